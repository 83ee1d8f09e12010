"""``env=battle``: a SMAC-compatible micro-battle simulator in PyTorch, batched.

An approximation of StarCraft II micro, not StarCraft II: its win rates are not
SMAC results. See ``env.py`` for what it models and what it leaves out.
"""
