/*
 * latency_hist.h: the commit-latency histogram queue_node keeps and prints
 * in its STAT lines (hist=US:COUNT,...), and that the benchmarks merge.
 *
 * 8 buckets per power of two (error under 6.25%): bucket b < 16 holds b
 * microseconds; above, bucket 16 + 8 (e - 4) + m holds [8+m, 9+m) << (e-3)
 * microseconds. A STAT line names each bucket by its midpoint
 * (hist_value), which hist_bucket maps back to the same bucket.
 */
#ifndef MUXRAFT_LATENCY_HIST_H
#define MUXRAFT_LATENCY_HIST_H

#include <stddef.h>
#include <stdint.h>

#define HIST_BUCKETS 400

static inline size_t hist_bucket(uint64_t us)
{
    if (us < 16)
        return (size_t)us;
    int e = 63 - __builtin_clzll(us); /* 2^e <= us < 2^(e+1), e >= 4 */
    size_t b = 16 + (size_t)(e - 4) * 8 + (size_t)((us >> (e - 3)) & 7);
    return b < HIST_BUCKETS ? b : HIST_BUCKETS - 1;
}

/* The midpoint of bucket b, in microseconds. */
static inline uint64_t hist_value(size_t b)
{
    if (b < 16)
        return b;
    int e = (int)((b - 16) / 8) + 4;
    uint64_t low = (uint64_t)(8 + (b - 16) % 8) << (e - 3);
    return low + ((uint64_t)1 << (e - 3)) / 2;
}

/* The p-quantile (0 < p <= 1) of histogram h, in microseconds (0 when it
 * is empty). */
static inline uint64_t hist_percentile(const uint64_t *h, double p)
{
    uint64_t total = 0;
    for (size_t b = 0; b < HIST_BUCKETS; b++)
        total += h[b];
    if (total == 0)
        return 0;
    uint64_t rank = (uint64_t)(p * (double)total + 0.999999);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (size_t b = 0; b < HIST_BUCKETS; b++) {
        seen += h[b];
        if (seen >= rank)
            return hist_value(b);
    }
    return hist_value(HIST_BUCKETS - 1);
}

#endif
