"""Critics: value networks that actor-critic learners train beside the agents."""
