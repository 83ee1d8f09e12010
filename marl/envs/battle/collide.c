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
    float wx[units], wy[units], px[units], py[units], gap2[units]; /* one copy's split positions, pushes */
    for (int64_t b = 0; b < batch; b++) {
        const float *p = pos + b * units * 2;
        const float *s = step + b * units * 2;
        const uint8_t *alive = live + b * units;
        const float *t = touch + b * table_stride;
        const float *share_of = push + b * table_stride;
        float *o = out + b * units * 2;
        for (int64_t u = 0; u < units; u++) {
            wx[u] = p[2 * u] + tie[2 * u];
            wy[u] = p[2 * u + 1] + tie[2 * u + 1];
            px[u] = 0.0f;
            py[u] = 0.0f;
        }
        /* Each pair once, both sides: u's push from v lands during u's row, v's from u
         * during u's row too (u < v), so each unit sums its partners' pushes in partner
         * order. v's side uses v - u = -(u - v) and step . (v - u) = -(step . (u - v)),
         * exact negations, so both sides are what a row per unit would compute. */
        for (int64_t u = 0; u < units; u++) {
            if (!alive[u]) {
                continue;
            }
            const float sxu = s[2 * u], syu = s[2 * u + 1];
            const float xu = wx[u], yu = wy[u];
            /* squared gaps first, in a loop without branches (corridor at 1,024
             * copies: 1.7 ms a call against 1.9-3.0 checking pair by pair) */
            for (int64_t v = u + 1; v < units; v++) {
                const float ex = xu - wx[v], ey = yu - wy[v];
                gap2[v] = ex * ex + ey * ey;
            }
            for (int64_t v = u + 1; v < units; v++) {
                const float reach_uv = t[u * units + v], reach_vu = t[v * units + u];
                const float d2 = gap2[v];
                /* sqrtf(d2) >= sqrtf(r * r) == r: no overlap on that side (exact; r = 0:
                 * the two do not collide that way) */
                if ((d2 >= reach_uv * reach_uv && d2 >= reach_vu * reach_vu) || !alive[v]) {
                    continue;
                }
                const float dx = xu - wx[v], dy = yu - wy[v];
                const float dist = sqrtf(d2);
                const float over = dist > eps ? dist : eps;
                const int u_into_v = sxu * dx + syu * dy < 0.0f;
                const int v_into_u = s[2 * v] * dx + s[2 * v + 1] * dy > 0.0f;
                const float depth_u = reach_uv - dist, depth_v = reach_vu - dist;
                if (depth_u > 0.0f) {
                    const float share =
                        u_into_v != v_into_u ? (float)u_into_v : share_of[u * units + v];
                    const float scale = depth_u * share / over;
                    px[u] += dx * scale;
                    py[u] += dy * scale;
                }
                if (depth_v > 0.0f) {
                    const float share =
                        v_into_u != u_into_v ? (float)v_into_u : share_of[v * units + u];
                    const float scale = depth_v * share / over;
                    px[v] += -dx * scale;
                    py[v] += -dy * scale;
                }
            }
        }
        for (int64_t u = 0; u < units; u++) {
            o[2 * u] = p[2 * u] + (px[u] * cos_slide - py[u] * sin_slide);
            o[2 * u + 1] = p[2 * u + 1] + (px[u] * sin_slide + py[u] * cos_slide);
        }
    }
}
