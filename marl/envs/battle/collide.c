/* The battle simulator's collision pass for B copies on the CPU, one loop over the
 * pairs of each copy: the rule of sim._separate (its docstring says why), checking every
 * pair. Built by native.py with the system's C compiler and called through ctypes.
 *
 * For every living unit u and every living unit v that u collides with (touch > 0),
 * with positions split by the tiny `tie` offsets: where r_u + r_v - |u - v| > 0, u takes
 * its share of that overlap along u - v: all of it when only u walked into v
 * (step_u . (u - v) < 0), none when only v walked into u (step_v . (u - v) > 0), else
 * `push`. The summed push is turned by the slide angle and added to u's position.
 *
 * Plain IEEE float arithmetic in a fixed order (built without FMA contraction or fast
 * math), each copy on its own: a copy's result does not depend on B.
 */
#include <math.h>
#include <stdint.h>

void marl_separate(
    const float *pos,       /* (B, U, 2) positions after this loop's walk */
    const uint8_t *live,    /* (B, U) bool: the unit is alive */
    const float *step,      /* (B, U, 2) this loop's walk */
    const float *tie,       /* (U, 2) tiny fixed offsets */
    const float *touch,     /* (B or 1, U, U) r_u + r_v where u and v collide, else 0 */
    const float *push,      /* same layout: u's share when both or neither walked */
    int64_t table_stride,   /* U * U: a table per copy; 0: one table for every copy */
    int64_t batch,
    int64_t units,
    float cos_slide,
    float sin_slide,
    float eps,              /* smallest distance divided by */
    float *out)             /* (B, U, 2) positions after pushing */
{
    float where[2 * units]; /* one copy's split positions */
    for (int64_t b = 0; b < batch; b++) {
        const float *p = pos + b * units * 2;
        const float *s = step + b * units * 2;
        const uint8_t *alive = live + b * units;
        const float *t = touch + b * table_stride;
        const float *share_of = push + b * table_stride;
        float *o = out + b * units * 2;
        for (int64_t u = 0; u < 2 * units; u++) {
            where[u] = p[u] + tie[u];
        }
        for (int64_t u = 0; u < units; u++) {
            float px = 0.0f, py = 0.0f;
            if (alive[u]) {
                const float xu = where[2 * u], yu = where[2 * u + 1];
                const float sxu = s[2 * u], syu = s[2 * u + 1];
                const float *tu = t + u * units, *pu = share_of + u * units;
                for (int64_t v = 0; v < units; v++) {
                    const float reach = tu[v];
                    if (!(reach > 0.0f) || !alive[v]) {
                        continue;
                    }
                    const float dx = xu - where[2 * v], dy = yu - where[2 * v + 1];
                    const float d2 = dx * dx + dy * dy;
                    /* sqrtf(d2) >= sqrtf(reach * reach) == reach: no overlap (exact) */
                    if (d2 >= reach * reach) {
                        continue;
                    }
                    const float dist = sqrtf(d2);
                    const float depth = reach - dist;
                    if (!(depth > 0.0f)) {
                        continue;
                    }
                    const int into = sxu * dx + syu * dy < 0.0f;
                    const int back = s[2 * v] * dx + s[2 * v + 1] * dy > 0.0f;
                    const float share = into != back ? (float)into : pu[v];
                    const float scale = depth * share / (dist > eps ? dist : eps);
                    px += dx * scale;
                    py += dy * scale;
                }
            }
            o[2 * u] = p[2 * u] + (px * cos_slide - py * sin_slide);
            o[2 * u + 1] = p[2 * u + 1] + (px * sin_slide + py * cos_slide);
        }
    }
}
