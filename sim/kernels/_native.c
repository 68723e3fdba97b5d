/* sim.kernels._native: compiled kernels of the bit-exact emulator (sim.emulate).
 *
 * Everything here is exact integer arithmetic on C-contiguous buffers handed over by
 * sim/kernels/lut.py and sim/kernels/intgemm.py, which validate shapes and value ranges first;
 * the kernels still check every index against the table size (a wrong index raises, it never
 * reads outside a buffer). The heavy functions release the GIL, so Python threads that work on
 * disjoint row or column ranges of one output run in parallel.
 *
 * Table kernels: out[p, q] += sum_k T[x[p, k], y[k, q]] with a V x V uint16 table (V <= 256,
 * 4..8-bit operands, values already offset to be non-negative), uint8 operand indices and uint32
 * accumulators. Up to `depth` table values are summed in uint16 lanes before they are widened
 * (the caller guarantees depth * max(T) <= 65535 and K * max(T) < 2**32).
 *
 *  - rowadd (portable C, AVX2): for each k the table columns of y[k, q0:q0+QB] are gathered once
 *    into U_k[v, :] = T[v, y[k, q0:q0+QB]] (from the transposed table: QB contiguous rows,
 *    transposed 8 x 16 at a time), then every output row p adds the row U_k[x[p, k], :]:
 *    QB products per vector load and add. Cost ~ K*Q*V (gather) + P*K*Q/lanes (adds).
 *  - permute (AVX-512BW intrinsics; the same algorithm in GCC vector extensions for any ISA):
 *    the register-permute class. One table column T[:, y[k, q]] (V uint16) sits in up to 8
 *    vector registers; 32 products are looked up by 16-bit two-table permutes (vpermt2w) of the
 *    uint8 indices x[p:p+32, k] and a select on index bits 6-7. Cost ~ P*K*Q/32 permute groups,
 *    no gather step.
 *
 * Helpers: index8 (range check + offset to uint8 in one pass), expand (per-value uint8 lookup
 * tables applied to an index matrix, laid out for one stacked integer GEMM), lutsum (row or
 * column sums of a per-value int64 table), combine (int64 output = sum of scaled int32/uint32
 * partial results + row, column and constant corrections).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define AXM_X86 1
#include <immintrin.h>
#else
#define AXM_X86 0
#endif

#define ISA_PORTABLE 0
#define ISA_AVX2 1
#define ISA_AVX512 2
#define MAXV 256

/* The helper passes (index8, expand, lutsum, combine) are plain loops that the compiler
 * vectorises; AXM_VEC builds them twice (AVX2 and the baseline ISA) and picks one at load time
 * (GCC/Clang function multi-versioning), so the portable build stays portable. */
#if AXM_X86 && defined(__has_attribute)
#if __has_attribute(target_clones)
#define AXM_VEC __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef AXM_VEC
#define AXM_VEC
#endif

static const uint16_t zero_row[MAXV] __attribute__((aligned(64)));

/* -------------------------------------------------------------------------------------------- */
/* CPU features                                                                                  */

static int cpu_has(int isa)
{
#if AXM_X86
    __builtin_cpu_init();
    if (isa == ISA_AVX2)
        return !!__builtin_cpu_supports("avx2");
    if (isa == ISA_AVX512)
        return !!__builtin_cpu_supports("avx512f") && !!__builtin_cpu_supports("avx512bw");
#endif
    return isa == ISA_PORTABLE;
}

/* -------------------------------------------------------------------------------------------- */
/* rowadd                                                                                        */

typedef struct {
    const uint16_t *tt;     /* V x V, tt[y * V + x] = T[x, y] */
    int V;
    const uint8_t *x;       /* P x K */
    const uint8_t *y;       /* K x Q */
    uint32_t *out;          /* P x Q */
    Py_ssize_t P, K, Q;
    Py_ssize_t p0, p1, q0, q1;
    int depth;
    uint16_t *work;         /* KB * V * QB */
    Py_ssize_t kb_max;
} rowadd_args;

static void build_portable(const rowadd_args *a, Py_ssize_t k, Py_ssize_t q0, int qn, int QB,
                           uint16_t *u)
{
    const uint8_t *yr = a->y + k * a->Q + q0;
    int V = a->V;
    for (int j = 0; j < QB; j++) {
        const uint16_t *r = j < qn ? a->tt + (size_t)yr[j] * V : zero_row;
        for (int v = 0; v < V; v++)
            u[(size_t)v * QB + j] = r[v];
    }
}

static void rows_portable(const rowadd_args *a, const uint16_t *U, Py_ssize_t k0, int kb,
                          Py_ssize_t q0, int qn, int QB)
{
    int V = a->V, depth = a->depth;
    uint32_t acc[32];
    uint16_t s[32];
    for (Py_ssize_t p = a->p0; p < a->p1; p++) {
        const uint8_t *xr = a->x + p * a->K + k0;
        for (int j = 0; j < QB; j++)
            acc[j] = 0;
        int kk = 0;
        while (kk < kb) {
            int e = kk + depth < kb ? kk + depth : kb;
            for (int j = 0; j < QB; j++)
                s[j] = 0;
            for (; kk < e; kk++) {
                const uint16_t *r = U + ((size_t)kk * V + xr[kk]) * QB;
                for (int j = 0; j < QB; j++)
                    s[j] = (uint16_t)(s[j] + r[j]);
            }
            for (int j = 0; j < QB; j++)
                acc[j] += s[j];
        }
        uint32_t *o = a->out + p * a->Q + q0;
        for (int j = 0; j < qn; j++)
            o[j] += acc[j];
    }
}

#if AXM_X86
__attribute__((target("avx2")))
static void build_avx2(const rowadd_args *a, Py_ssize_t k, Py_ssize_t q0, int qn, int QB,
                       uint16_t *u)
{
    const uint8_t *yr = a->y + k * a->Q + q0;
    int V = a->V;
    for (int j0 = 0; j0 < QB; j0 += 8) {
        const uint16_t *r[8];
        for (int j = 0; j < 8; j++)
            r[j] = j0 + j < qn ? a->tt + (size_t)yr[j0 + j] * V : zero_row;
        for (int v0 = 0; v0 < V; v0 += 16) {
            /* rows j (8) x values v0..v0+15; 128-bit lanes hold v0..v0+7 and v0+8..v0+15 */
            __m256i b[8], c[8], d[8];
            for (int j = 0; j < 8; j++)
                b[j] = _mm256_loadu_si256((const __m256i *)(r[j] + v0));
            for (int j = 0; j < 4; j++) {
                c[2 * j] = _mm256_unpacklo_epi16(b[2 * j], b[2 * j + 1]);
                c[2 * j + 1] = _mm256_unpackhi_epi16(b[2 * j], b[2 * j + 1]);
            }
            /* c0 = r0r1 v0-3, c1 = r0r1 v4-7, c2 = r2r3 v0-3, ... */
            d[0] = _mm256_unpacklo_epi32(c[0], c[2]);   /* r0-3 v0, v1 */
            d[1] = _mm256_unpackhi_epi32(c[0], c[2]);   /* r0-3 v2, v3 */
            d[2] = _mm256_unpacklo_epi32(c[1], c[3]);   /* r0-3 v4, v5 */
            d[3] = _mm256_unpackhi_epi32(c[1], c[3]);   /* r0-3 v6, v7 */
            d[4] = _mm256_unpacklo_epi32(c[4], c[6]);   /* r4-7 v0, v1 */
            d[5] = _mm256_unpackhi_epi32(c[4], c[6]);
            d[6] = _mm256_unpacklo_epi32(c[5], c[7]);
            d[7] = _mm256_unpackhi_epi32(c[5], c[7]);
            __m256i col[8];
            col[0] = _mm256_unpacklo_epi64(d[0], d[4]);  /* r0-7 at v0 (lane 1: v8) */
            col[1] = _mm256_unpackhi_epi64(d[0], d[4]);  /* v1 */
            col[2] = _mm256_unpacklo_epi64(d[1], d[5]);  /* v2 */
            col[3] = _mm256_unpackhi_epi64(d[1], d[5]);
            col[4] = _mm256_unpacklo_epi64(d[2], d[6]);
            col[5] = _mm256_unpackhi_epi64(d[2], d[6]);
            col[6] = _mm256_unpacklo_epi64(d[3], d[7]);
            col[7] = _mm256_unpackhi_epi64(d[3], d[7]);
            for (int i = 0; i < 8; i++) {
                _mm_storeu_si128((__m128i *)(u + (size_t)(v0 + i) * QB + j0),
                                 _mm256_castsi256_si128(col[i]));
                _mm_storeu_si128((__m128i *)(u + (size_t)(v0 + 8 + i) * QB + j0),
                                 _mm256_extracti128_si256(col[i], 1));
            }
        }
    }
}

__attribute__((target("avx2")))
static inline void add_out_avx2(uint32_t *o, const __m256i *acc, int nacc, int qn)
{
    if (qn == 8 * nacc) {
        for (int i = 0; i < nacc; i++) {
            __m256i *op = (__m256i *)(o + 8 * i);
            _mm256_storeu_si256(op, _mm256_add_epi32(_mm256_loadu_si256(op), acc[i]));
        }
    } else {
        uint32_t tmp[32];
        for (int i = 0; i < nacc; i++)
            _mm256_storeu_si256((__m256i *)(tmp + 8 * i), acc[i]);
        for (int j = 0; j < qn; j++)
            o[j] += tmp[j];
    }
}

/* QB = 8: one 128-bit row of U per (k, value) */
__attribute__((target("avx2")))
static void rows_avx2_8(const rowadd_args *a, const uint16_t *U, Py_ssize_t k0, int kb,
                        Py_ssize_t q0, int qn)
{
    int V = a->V, depth = a->depth;
    for (Py_ssize_t p = a->p0; p < a->p1; p++) {
        const uint8_t *xr = a->x + p * a->K + k0;
        __m256i acc = _mm256_setzero_si256();
        int kk = 0;
        if (depth == 1) {
            for (; kk < kb; kk++) {
                const uint16_t *r = U + ((size_t)kk * V + xr[kk]) * 8;
                acc = _mm256_add_epi32(acc, _mm256_cvtepu16_epi32(
                    _mm_loadu_si128((const __m128i *)r)));
            }
        } else {
            while (kk < kb) {
                int e = kk + depth < kb ? kk + depth : kb;
                __m128i s = _mm_setzero_si128();
                for (; kk < e; kk++) {
                    const uint16_t *r = U + ((size_t)kk * V + xr[kk]) * 8;
                    s = _mm_add_epi16(s, _mm_loadu_si128((const __m128i *)r));
                }
                acc = _mm256_add_epi32(acc, _mm256_cvtepu16_epi32(s));
            }
        }
        add_out_avx2(a->out + p * a->Q + q0, &acc, 1, qn);
    }
}

/* QB = 16 * NY: NY 256-bit rows of U per (k, value) */
#define ROWS_AVX2(NY)                                                                          \
__attribute__((target("avx2")))                                                                \
static void rows_avx2_##NY(const rowadd_args *a, const uint16_t *U, Py_ssize_t k0, int kb,     \
                           Py_ssize_t q0, int qn)                                              \
{                                                                                              \
    const int QB = 16 * NY;                                                                    \
    int V = a->V, depth = a->depth;                                                            \
    for (Py_ssize_t p = a->p0; p < a->p1; p++) {                                               \
        const uint8_t *xr = a->x + p * a->K + k0;                                              \
        __m256i acc[2 * NY];                                                                   \
        for (int i = 0; i < 2 * NY; i++)                                                       \
            acc[i] = _mm256_setzero_si256();                                                   \
        int kk = 0;                                                                            \
        if (depth == 1) {                                                                      \
            for (; kk < kb; kk++) {                                                            \
                const uint16_t *r = U + ((size_t)kk * V + xr[kk]) * QB;                        \
                for (int i = 0; i < 2 * NY; i++)                                               \
                    acc[i] = _mm256_add_epi32(acc[i], _mm256_cvtepu16_epi32(                   \
                        _mm_loadu_si128((const __m128i *)(r + 8 * i))));                       \
            }                                                                                  \
        } else {                                                                               \
            while (kk < kb) {                                                                  \
                int e = kk + depth < kb ? kk + depth : kb;                                     \
                __m256i s[NY];                                                                 \
                for (int i = 0; i < NY; i++)                                                   \
                    s[i] = _mm256_setzero_si256();                                             \
                for (; kk < e; kk++) {                                                         \
                    const uint16_t *r = U + ((size_t)kk * V + xr[kk]) * QB;                    \
                    for (int i = 0; i < NY; i++)                                               \
                        s[i] = _mm256_add_epi16(s[i],                                          \
                            _mm256_loadu_si256((const __m256i *)(r + 16 * i)));                \
                }                                                                              \
                for (int i = 0; i < NY; i++) {                                                 \
                    acc[2 * i] = _mm256_add_epi32(acc[2 * i],                                  \
                        _mm256_cvtepu16_epi32(_mm256_castsi256_si128(s[i])));                  \
                    acc[2 * i + 1] = _mm256_add_epi32(acc[2 * i + 1],                          \
                        _mm256_cvtepu16_epi32(_mm256_extracti128_si256(s[i], 1)));             \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
        add_out_avx2(a->out + p * a->Q + q0, acc, 2 * NY, qn);                                 \
    }                                                                                          \
}
ROWS_AVX2(1)
ROWS_AVX2(2)
#endif

static int rowadd_qb(Py_ssize_t width)
{
    return width <= 8 ? 8 : width <= 16 ? 16 : 32;
}

static void rowadd_run(const rowadd_args *a, int isa)
{
    int QB = rowadd_qb(a->q1 - a->q0);
    for (Py_ssize_t q0 = a->q0; q0 < a->q1; q0 += QB) {
        int qn = (int)(a->q1 - q0 < QB ? a->q1 - q0 : QB);
        for (Py_ssize_t k0 = 0; k0 < a->K; k0 += a->kb_max) {
            int kb = (int)(a->K - k0 < a->kb_max ? a->K - k0 : a->kb_max);
            for (int kk = 0; kk < kb; kk++) {
                uint16_t *u = a->work + (size_t)kk * a->V * QB;
#if AXM_X86
                if (isa == ISA_AVX2)
                    build_avx2(a, k0 + kk, q0, qn, QB, u);
                else
#endif
                    build_portable(a, k0 + kk, q0, qn, QB, u);
            }
#if AXM_X86
            if (isa == ISA_AVX2) {
                if (QB == 8)
                    rows_avx2_8(a, a->work, k0, kb, q0, qn);
                else if (QB == 16)
                    rows_avx2_1(a, a->work, k0, kb, q0, qn);
                else
                    rows_avx2_2(a, a->work, k0, kb, q0, qn);
                continue;
            }
#endif
            rows_portable(a, a->work, k0, kb, q0, qn, QB);
        }
    }
}

/* -------------------------------------------------------------------------------------------- */
/* permute (register-permute class)                                                              */

typedef uint16_t v32h __attribute__((vector_size(64)));
typedef uint8_t v32b __attribute__((vector_size(32)));
typedef uint16_t v16h __attribute__((vector_size(32)));
typedef uint32_t v16w __attribute__((vector_size(64)));

typedef struct {
    const uint16_t *tt;     /* V x VP (rows padded to VP = max(V, 64) entries), tt[y*VP+x] */
    int V, VP;
    const uint8_t *xt;      /* K x P */
    const uint8_t *y;       /* K x Q */
    uint32_t *outt;         /* Q x P */
    Py_ssize_t P, K, Q;
    Py_ssize_t p0, p1, q0, q1;
    int depth;
} permute_args;

#define PB 4               /* 32-product chunks per register block */

/* The portable version, in GCC vector extensions (the same blocking and select scheme as the
 * AVX-512 intrinsics below; slow without AVX-512, kept as the compiled reference). */
#define PERMUTE_BODY                                                                           \
{                                                                                              \
    int npair = a->VP / 64, depth = a->depth;                                                  \
    Py_ssize_t P = a->P;                                                                       \
    for (Py_ssize_t q = a->q0; q < a->q1; q++) {                                               \
        Py_ssize_t p = a->p0;                                                                  \
        for (; p + 32 * PB <= a->p1; p += 32 * PB) {                                           \
            v16w acc[2 * PB];                                                                  \
            for (int i = 0; i < 2 * PB; i++)                                                   \
                acc[i] = (v16w){0};                                                            \
            Py_ssize_t k = 0;                                                                  \
            while (k < a->K) {                                                                 \
                Py_ssize_t e = k + depth < a->K ? k + depth : a->K;                            \
                v32h s[PB];                                                                    \
                for (int c = 0; c < PB; c++)                                                   \
                    s[c] = (v32h){0};                                                          \
                for (; k < e; k++) {                                                           \
                    const v32h *t = (const v32h *)(a->tt + (size_t)a->y[k * a->Q + q] * a->VP);\
                    v32h t0 = t[0], t1 = t[1];                                                 \
                    for (int c = 0; c < PB; c++) {                                             \
                        v32b ib;                                                               \
                        memcpy(&ib, a->xt + k * P + p + 32 * c, 32);                           \
                        v32h idx = __builtin_convertvector(ib, v32h);                          \
                        v32h r = __builtin_shuffle(t0, t1, idx);                               \
                        for (int j = 1; j < npair; j++) {                                      \
                            v32h rj = __builtin_shuffle(t[2 * j], t[2 * j + 1], idx);          \
                            v32h m = (v32h)((idx >> 6) == (uint16_t)j);                        \
                            r = (r & ~m) | (rj & m);                                           \
                        }                                                                      \
                        s[c] += r;                                                             \
                    }                                                                          \
                }                                                                              \
                for (int c = 0; c < PB; c++) {                                                 \
                    v16h lo = __builtin_shufflevector(s[c], s[c], 0, 1, 2, 3, 4, 5, 6, 7, 8,   \
                                                      9, 10, 11, 12, 13, 14, 15);              \
                    v16h hi = __builtin_shufflevector(s[c], s[c], 16, 17, 18, 19, 20, 21, 22,  \
                                                      23, 24, 25, 26, 27, 28, 29, 30, 31);     \
                    acc[2 * c] += __builtin_convertvector(lo, v16w);                           \
                    acc[2 * c + 1] += __builtin_convertvector(hi, v16w);                       \
                }                                                                              \
            }                                                                                  \
            uint32_t *o = a->outt + q * P + p;                                                 \
            for (int i = 0; i < 2 * PB; i++) {                                                 \
                v16w cur;                                                                      \
                memcpy(&cur, o + 16 * i, 64);                                                  \
                cur += acc[i];                                                                 \
                memcpy(o + 16 * i, &cur, 64);                                                  \
            }                                                                                  \
        }                                                                                      \
        for (; p < a->p1; p++) {            /* remainder: scalar lookups */                    \
            uint32_t sum = 0;                                                                  \
            for (Py_ssize_t k = 0; k < a->K; k++)                                              \
                sum += a->tt[(size_t)a->y[k * a->Q + q] * a->VP + a->xt[k * P + p]];           \
            a->outt[q * P + p] += sum;                                                         \
        }                                                                                      \
    }                                                                                          \
}

#if defined(__GNUC__) && !defined(__clang__)
static void permute_portable(const permute_args *a) PERMUTE_BODY
#else
/* compilers without GCC's two-vector __builtin_shuffle: plain lookups (same result) */
static void permute_portable(const permute_args *a)
{
    for (Py_ssize_t q = a->q0; q < a->q1; q++)
        for (Py_ssize_t p = a->p0; p < a->p1; p++) {
            uint32_t sum = 0;
            for (Py_ssize_t k = 0; k < a->K; k++)
                sum += a->tt[(size_t)a->y[k * a->Q + q] * a->VP + a->xt[k * a->P + p]];
            a->outt[q * a->P + p] += sum;
        }
}
#endif

#if AXM_X86
/* The AVX-512BW kernel written with intrinsics: the table column T[:, y[k, q]] sits in
 * 2 * NP zmm registers (NP = VP / 64 pairs of 32 uint16 entries); 32 indices are widened to
 * 16 bits, looked up in every pair with vpermt2w (low 6 bits) and the pairs merged by
 * masked blends on index bits 6 and 7. NP is a compile-time constant in each copy. */
__attribute__((target("avx512f,avx512bw"), always_inline))
static inline void permute_avx512_np(const permute_args *a, const int NP)
{
    int depth = a->depth;
    Py_ssize_t P = a->P;
    const __m512i bit6 = _mm512_set1_epi16(64), bit7 = _mm512_set1_epi16(128);
    for (Py_ssize_t q = a->q0; q < a->q1; q++) {
        Py_ssize_t p = a->p0;
        for (; p + 32 * PB <= a->p1; p += 32 * PB) {
            __m512i acc[2 * PB];
            for (int i = 0; i < 2 * PB; i++)
                acc[i] = _mm512_setzero_si512();
            Py_ssize_t k = 0;
            while (k < a->K) {
                Py_ssize_t e = k + depth < a->K ? k + depth : a->K;
                __m512i s[PB];
                for (int c = 0; c < PB; c++)
                    s[c] = _mm512_setzero_si512();
                for (; k < e; k++) {
                    const uint16_t *row = a->tt + (size_t)a->y[k * a->Q + q] * a->VP;
                    __m512i t0 = _mm512_load_si512((const void *)row);
                    __m512i t1 = _mm512_load_si512((const void *)(row + 32));
                    __m512i t2 = _mm512_setzero_si512(), t3 = t2, t4 = t2, t5 = t2, t6 = t2,
                            t7 = t2;
                    if (NP > 1) {
                        t2 = _mm512_load_si512((const void *)(row + 64));
                        t3 = _mm512_load_si512((const void *)(row + 96));
                    }
                    if (NP > 2) {
                        t4 = _mm512_load_si512((const void *)(row + 128));
                        t5 = _mm512_load_si512((const void *)(row + 160));
                    }
                    if (NP > 3) {
                        t6 = _mm512_load_si512((const void *)(row + 192));
                        t7 = _mm512_load_si512((const void *)(row + 224));
                    }
                    const uint8_t *xr = a->xt + k * P + p;
                    for (int c = 0; c < PB; c++) {
                        __m512i idx = _mm512_cvtepu8_epi16(
                            _mm256_loadu_si256((const __m256i *)(xr + 32 * c)));
                        __m512i r = _mm512_permutex2var_epi16(t0, idx, t1);
                        if (NP > 1) {
                            __mmask32 m6 = _mm512_test_epi16_mask(idx, bit6);
                            __m512i r23 = _mm512_permutex2var_epi16(t2, idx, t3);
                            if (NP > 2) {
                                __mmask32 m7 = _mm512_test_epi16_mask(idx, bit7);
                                __m512i r45 = _mm512_permutex2var_epi16(t4, idx, t5);
                                __m512i r67 = _mm512_permutex2var_epi16(t6, idx, t7);
                                __m512i lo = _mm512_mask_blend_epi16(m6, r, r23);
                                __m512i hi = _mm512_mask_blend_epi16(m6, r45, r67);
                                r = _mm512_mask_blend_epi16(m7, lo, hi);
                            } else {
                                r = _mm512_mask_blend_epi16(m6, r, r23);
                            }
                        }
                        s[c] = _mm512_add_epi16(s[c], r);
                    }
                }
                for (int c = 0; c < PB; c++) {
                    acc[2 * c] = _mm512_add_epi32(acc[2 * c], _mm512_cvtepu16_epi32(
                        _mm512_castsi512_si256(s[c])));
                    acc[2 * c + 1] = _mm512_add_epi32(acc[2 * c + 1], _mm512_cvtepu16_epi32(
                        _mm512_extracti64x4_epi64(s[c], 1)));
                }
            }
            uint32_t *o = a->outt + q * P + p;
            for (int i = 0; i < 2 * PB; i++) {
                __m512i cur = _mm512_loadu_si512((const void *)(o + 16 * i));
                _mm512_storeu_si512((void *)(o + 16 * i), _mm512_add_epi32(cur, acc[i]));
            }
        }
        for (; p < a->p1; p++) {            /* remainder: scalar lookups */
            uint32_t sum = 0;
            for (Py_ssize_t k = 0; k < a->K; k++)
                sum += a->tt[(size_t)a->y[k * a->Q + q] * a->VP + a->xt[k * P + p]];
            a->outt[q * P + p] += sum;
        }
    }
}

__attribute__((target("avx512f,avx512bw")))
static void permute_avx512(const permute_args *a)
{
    switch (a->VP / 64) {
    case 1: permute_avx512_np(a, 1); break;
    case 2: permute_avx512_np(a, 2); break;
    case 3: permute_avx512_np(a, 3); break;
    default: permute_avx512_np(a, 4); break;
    }
}
#endif

/* -------------------------------------------------------------------------------------------- */
/* Python glue                                                                                   */

AXM_VEC static int max_u8(const uint8_t *p, Py_ssize_t n)
{
    uint8_t m = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        m = p[i] > m ? p[i] : m;
    return m;
}

static int need(Py_buffer *b, Py_ssize_t bytes, const char *what)
{
    if (b->len != bytes) {
        PyErr_Format(PyExc_ValueError, "%s: buffer has %zd bytes, expected %zd", what, b->len,
                     bytes);
        return 0;
    }
    return 1;
}

static int check_ranges(Py_ssize_t p0, Py_ssize_t p1, Py_ssize_t P, Py_ssize_t q0,
                        Py_ssize_t q1, Py_ssize_t Q)
{
    if (p0 < 0 || p1 > P || p0 > p1 || q0 < 0 || q1 > Q || q0 > q1) {
        PyErr_SetString(PyExc_ValueError, "row or column range outside the output");
        return 0;
    }
    return 1;
}

static PyObject *py_features(PyObject *self, PyObject *args)
{
    return Py_BuildValue("{s:i,s:i,s:i}", "portable", 1, "avx2", cpu_has(ISA_AVX2),
                         "avx512", cpu_has(ISA_AVX512));
}

/* rowadd(tt, V, x, y, out, P, K, Q, p0, p1, q0, q1, depth, isa, work) */
static PyObject *py_rowadd(PyObject *self, PyObject *args)
{
    Py_buffer tt, x, y, out, work;
    rowadd_args a;
    int isa;
    if (!PyArg_ParseTuple(args, "y*iy*y*w*nnnnnnniiw*", &tt, &a.V, &x, &y, &out, &a.P, &a.K,
                          &a.Q, &a.p0, &a.p1, &a.q0, &a.q1, &a.depth, &isa, &work))
        return NULL;
    PyObject *ret = NULL;
    if (a.V < 16 || a.V > MAXV || a.V % 16 || a.depth < 1 || a.P < 0 || a.K < 0 || a.Q < 0) {
        PyErr_SetString(PyExc_ValueError, "rowadd: bad table size, depth or shape");
        goto done;
    }
    if (!need(&tt, (Py_ssize_t)a.V * a.V * 2, "rowadd table") ||
        !need(&x, a.P * a.K, "rowadd x") || !need(&y, a.K * a.Q, "rowadd y") ||
        !need(&out, a.P * a.Q * 4, "rowadd out") ||
        !check_ranges(a.p0, a.p1, a.P, a.q0, a.q1, a.Q))
        goto done;
    if (!cpu_has(isa)) {
        PyErr_SetString(PyExc_ValueError, "rowadd: this CPU lacks the requested kernel");
        goto done;
    }
    int QB = rowadd_qb(a.q1 - a.q0);
    a.kb_max = work.len / ((Py_ssize_t)a.V * QB * 2);
    if (a.kb_max < 1) {
        PyErr_SetString(PyExc_ValueError, "rowadd: work buffer too small");
        goto done;
    }
    a.tt = tt.buf; a.x = x.buf; a.y = y.buf; a.out = out.buf; a.work = work.buf;
    int bad;
    Py_BEGIN_ALLOW_THREADS
    bad = (a.P > 0 && a.K > 0 && max_u8(a.x + a.p0 * a.K, (a.p1 - a.p0) * a.K) >= a.V) ||
          (a.K > 0 && a.Q > 0 && max_u8(a.y, a.K * a.Q) >= a.V);
    if (!bad && a.p1 > a.p0 && a.q1 > a.q0)
        rowadd_run(&a, isa);
    Py_END_ALLOW_THREADS
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "rowadd: index outside the table");
        goto done;
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    PyBuffer_Release(&tt); PyBuffer_Release(&x); PyBuffer_Release(&y);
    PyBuffer_Release(&out); PyBuffer_Release(&work);
    return ret;
}

/* permute(tt, V, VP, xt, y, outt, P, K, Q, p0, p1, q0, q1, depth, isa) */
static PyObject *py_permute(PyObject *self, PyObject *args)
{
    Py_buffer tt, xt, y, outt;
    permute_args a;
    int isa;
    if (!PyArg_ParseTuple(args, "y*iiy*y*w*nnnnnnnii", &tt, &a.V, &a.VP, &xt, &y, &outt, &a.P,
                          &a.K, &a.Q, &a.p0, &a.p1, &a.q0, &a.q1, &a.depth, &isa))
        return NULL;
    PyObject *ret = NULL;
    if (a.V < 1 || a.V > MAXV || a.VP < a.V || a.VP % 64 || a.VP > MAXV || a.depth < 1 ||
        a.P < 0 || a.K < 0 || a.Q < 0 || (isa != ISA_PORTABLE && isa != ISA_AVX512)) {
        PyErr_SetString(PyExc_ValueError, "permute: bad table size, depth, shape or kernel");
        goto done;
    }
    if (!need(&tt, (Py_ssize_t)a.V * a.VP * 2, "permute table") ||
        !need(&xt, a.P * a.K, "permute x") || !need(&y, a.K * a.Q, "permute y") ||
        !need(&outt, a.P * a.Q * 4, "permute out") ||
        !check_ranges(a.p0, a.p1, a.P, a.q0, a.q1, a.Q))
        goto done;
    if (((uintptr_t)tt.buf) % 64) {
        PyErr_SetString(PyExc_ValueError, "permute: table must be 64-byte aligned");
        goto done;
    }
    if (!cpu_has(isa)) {
        PyErr_SetString(PyExc_ValueError, "permute: this CPU lacks the requested kernel");
        goto done;
    }
    a.tt = tt.buf; a.xt = xt.buf; a.y = y.buf; a.outt = outt.buf;
    int bad;
    Py_BEGIN_ALLOW_THREADS
    bad = (a.P > 0 && a.K > 0 && max_u8(a.xt, a.P * a.K) >= a.V) ||
          (a.K > 0 && a.Q > 0 && max_u8(a.y, a.K * a.Q) >= a.V);
    if (!bad && a.p1 > a.p0 && a.q1 > a.q0) {
#if AXM_X86
        if (isa == ISA_AVX512)
            permute_avx512(&a);
        else
#endif
            permute_portable(&a);
    }
    Py_END_ALLOW_THREADS
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "permute: index outside the table");
        goto done;
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    PyBuffer_Release(&tt); PyBuffer_Release(&xt); PyBuffer_Release(&y); PyBuffer_Release(&outt);
    return ret;
}

/* index8 loops: d = s - lo, and whether every s lies in lo..hi (one unsigned compare each,
 * accumulated without branches so that the loop vectorises) */
#define INDEX8_LOOP(NAME, T)                                                                   \
    AXM_VEC static int NAME(const T *s, Py_ssize_t n, int64_t l, uint64_t span, uint8_t *d)    \
    {                                                                                          \
        uint64_t bad = 0;                                                                      \
        for (Py_ssize_t i = 0; i < n; i++) {                                                   \
            uint64_t v = (uint64_t)((int64_t)s[i] - l);                                        \
            bad |= (uint64_t)(v > span);                                                       \
            d[i] = (uint8_t)v;                                                                 \
        }                                                                                      \
        return !bad;                                                                           \
    }
INDEX8_LOOP(index8_i64, int64_t)
INDEX8_LOOP(index8_i32, int32_t)
INDEX8_LOOP(index8_i16, int16_t)
INDEX8_LOOP(index8_i8, int8_t)
INDEX8_LOOP(index8_u32, uint32_t)
INDEX8_LOOP(index8_u16, uint16_t)
INDEX8_LOOP(index8_u8, uint8_t)
#undef INDEX8_LOOP

AXM_VEC static int u64_fits_i64(const uint64_t *s, Py_ssize_t n)
{
    uint64_t top = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        top |= s[i];
    return top <= (uint64_t)INT64_MAX;
}

/* index8(src, itemsize, signed, lo, hi, dst) -> bool: dst = src - lo when lo <= src <= hi */
static PyObject *py_index8(PyObject *self, PyObject *args)
{
    Py_buffer src, dst;
    int itemsize, is_signed;
    long long lo, hi;
    if (!PyArg_ParseTuple(args, "y*iiLLw*", &src, &itemsize, &is_signed, &lo, &hi, &dst))
        return NULL;
    PyObject *ret = NULL;
    Py_ssize_t n = dst.len;
    if ((itemsize != 1 && itemsize != 2 && itemsize != 4 && itemsize != 8) ||
        src.len != n * itemsize || hi < lo || hi - lo > 255) {
        PyErr_SetString(PyExc_ValueError, "index8: bad sizes or range");
        goto done;
    }
    int ok = 1;
    uint8_t *d = dst.buf;
    const void *sb = src.buf;
    int64_t l = lo;
    uint64_t span = (uint64_t)(hi - lo);
    Py_BEGIN_ALLOW_THREADS
    if (is_signed) {
        if (itemsize == 8) ok = index8_i64(sb, n, l, span, d);
        else if (itemsize == 4) ok = index8_i32(sb, n, l, span, d);
        else if (itemsize == 2) ok = index8_i16(sb, n, l, span, d);
        else ok = index8_i8(sb, n, l, span, d);
    } else {
        if (itemsize == 8)
            ok = u64_fits_i64(sb, n) && index8_i64(sb, n, l, span, d);
        else if (itemsize == 4) ok = index8_u32(sb, n, l, span, d);
        else if (itemsize == 2) ok = index8_u16(sb, n, l, span, d);
        else ok = index8_u8(sb, n, l, span, d);
    }
    Py_END_ALLOW_THREADS
    ret = PyBool_FromLong(ok);
done:
    PyBuffer_Release(&src); PyBuffer_Release(&dst);
    return ret;
}

/* expand(idx, R, C, lut, V, T, mode, dst): mode 0: dst[r, c*T+t] = lut[idx[r,c], t] (R x C*T);
 * mode 1: dst[r*T+t, c] = lut[idx[r,c], t] (R*T x C) */
static PyObject *py_expand(PyObject *self, PyObject *args)
{
    Py_buffer idx, lut, dst;
    Py_ssize_t R, C;
    int V, T, mode;
    if (!PyArg_ParseTuple(args, "y*nny*iiiw*", &idx, &R, &C, &lut, &V, &T, &mode, &dst))
        return NULL;
    PyObject *ret = NULL;
    if (R < 0 || C < 0 || V < 1 || V > MAXV || T < 1 || !need(&idx, R * C, "expand idx") ||
        !need(&lut, (Py_ssize_t)V * T, "expand lut") || !need(&dst, R * C * T, "expand dst"))
        goto done;
    const uint8_t *ix = idx.buf, *lu = lut.buf;
    uint8_t *d = dst.buf;
    int bad;
    Py_BEGIN_ALLOW_THREADS
    bad = R > 0 && C > 0 && max_u8(ix, R * C) >= V;
    if (!bad) {
        if (mode == 0) {
            if (T == 1) {
                for (Py_ssize_t i = 0; i < R * C; i++)
                    d[i] = lu[ix[i]];
            } else {
                for (Py_ssize_t i = 0; i < R * C; i++)
                    memcpy(d + i * T, lu + (size_t)ix[i] * T, T);
            }
        } else {
            for (Py_ssize_t r = 0; r < R; r++)
                for (int t = 0; t < T; t++) {
                    const uint8_t *ir = ix + r * C;
                    uint8_t *dr = d + (r * T + t) * C;
                    for (Py_ssize_t c = 0; c < C; c++)
                        dr[c] = lu[(size_t)ir[c] * T + t];
                }
        }
    }
    Py_END_ALLOW_THREADS
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "expand: index outside the table");
        goto done;
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    PyBuffer_Release(&idx); PyBuffer_Release(&lut); PyBuffer_Release(&dst);
    return ret;
}

AXM_VEC static void index_sums(const uint8_t *ix, Py_ssize_t R, Py_ssize_t C, int axis,
                               int64_t h0, int64_t step, int64_t *d)
{
    if (axis) {
        for (Py_ssize_t r = 0; r < R; r++) {
            const uint8_t *ir = ix + r * C;
            uint64_t s = 0;
            for (Py_ssize_t c0 = 0; c0 < C; c0 += 4096) {   /* uint32 lanes cannot wrap */
                Py_ssize_t c1 = c0 + 4096 < C ? c0 + 4096 : C;
                uint32_t part = 0;
                for (Py_ssize_t c = c0; c < c1; c++)
                    part += ir[c];
                s += part;
            }
            d[r] = h0 * C + step * (int64_t)s;
        }
    } else {
        uint32_t *acc = malloc(C * sizeof(uint32_t) + 1);
        if (acc == NULL) {           /* no memory for the lanes: the scalar loop */
            for (Py_ssize_t c = 0; c < C; c++)
                d[c] = 0;
            for (Py_ssize_t r = 0; r < R; r++)
                for (Py_ssize_t c = 0; c < C; c++)
                    d[c] += ix[r * C + c];
        } else {
            for (Py_ssize_t c = 0; c < C; c++)
                d[c] = 0;
            for (Py_ssize_t r0 = 0; r0 < R; r0 += 4096) {
                Py_ssize_t r1 = r0 + 4096 < R ? r0 + 4096 : R;
                for (Py_ssize_t c = 0; c < C; c++)
                    acc[c] = 0;
                for (Py_ssize_t r = r0; r < r1; r++) {
                    const uint8_t *ir = ix + r * C;
                    for (Py_ssize_t c = 0; c < C; c++)
                        acc[c] += ir[c];
                }
                for (Py_ssize_t c = 0; c < C; c++)
                    d[c] += acc[c];
            }
            free(acc);
        }
        for (Py_ssize_t c = 0; c < C; c++)
            d[c] = h0 * R + step * d[c];
    }
}

static void table_sums(const uint8_t *ix, Py_ssize_t R, Py_ssize_t C, const int64_t *hv,
                       int axis, int64_t *d)
{
    if (axis) {
        for (Py_ssize_t r = 0; r < R; r++) {
            int64_t s = 0;
            const uint8_t *ir = ix + r * C;
            for (Py_ssize_t c = 0; c < C; c++)
                s += hv[ir[c]];
            d[r] = s;
        }
    } else {
        memset(d, 0, C * 8);
        for (Py_ssize_t r = 0; r < R; r++) {
            const uint8_t *ir = ix + r * C;
            for (Py_ssize_t c = 0; c < C; c++)
                d[c] += hv[ir[c]];
        }
    }
}

/* lutsum(idx, R, C, h, V, axis, dst): axis 1: dst[r] = sum_c h[idx[r,c]];
 * axis 0: dst[c] = sum_r h[idx[r,c]] (int64, wrapping is impossible for the callers' sizes) */
static PyObject *py_lutsum(PyObject *self, PyObject *args)
{
    Py_buffer idx, h, dst;
    Py_ssize_t R, C;
    int V, axis;
    if (!PyArg_ParseTuple(args, "y*nny*iiw*", &idx, &R, &C, &h, &V, &axis, &dst))
        return NULL;
    PyObject *ret = NULL;
    if (R < 0 || C < 0 || V < 1 || V > MAXV || !need(&idx, R * C, "lutsum idx") ||
        !need(&h, (Py_ssize_t)V * 8, "lutsum h") ||
        !need(&dst, (axis ? R : C) * 8, "lutsum dst"))
        goto done;
    const uint8_t *ix = idx.buf;
    const int64_t *hv = h.buf;
    int64_t *d = dst.buf;
    int bad;
    /* an affine table h[v] = h0 + step * v is a plain index sum (vectorised) */
    int64_t h0 = hv[0], step = V > 1 ? hv[1] - hv[0] : 0;
    int affine = 1;
    for (int v = 0; v < V && affine; v++)
        affine = hv[v] == h0 + step * v;
    Py_BEGIN_ALLOW_THREADS
    bad = R > 0 && C > 0 && max_u8(ix, R * C) >= V;
    if (!bad) {
        if (affine)
            index_sums(ix, R, C, axis, h0, step, d);
        else
            table_sums(ix, R, C, hv, axis, d);
    }
    Py_END_ALLOW_THREADS
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "lutsum: index outside the table");
        goto done;
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    PyBuffer_Release(&idx); PyBuffer_Release(&h); PyBuffer_Release(&dst);
    return ret;
}

AXM_VEC static void combine_loop(int64_t *d, Py_ssize_t M, Py_ssize_t N, int np_,
                                 const void *const *pb, const long long *scales, const int *uns,
                                 const int *trn, const int64_t *rc, const int64_t *cc,
                                 int64_t c0, int acc)
{
    /* row blocks keep the transposed parts' reads within a few cache lines per column */
    for (Py_ssize_t m0 = 0; m0 < M; m0 += 16) {
        Py_ssize_t m1 = m0 + 16 < M ? m0 + 16 : M;
        for (Py_ssize_t m = m0; m < m1; m++) {
            int64_t *dr = d + m * N;
            int64_t base = c0 + (rc ? rc[m] : 0);
            if (acc) {
                for (Py_ssize_t j = 0; j < N; j++)
                    dr[j] += base;
            } else {
                for (Py_ssize_t j = 0; j < N; j++)
                    dr[j] = base;
            }
            if (cc)
                for (Py_ssize_t j = 0; j < N; j++)
                    dr[j] += cc[j];
            for (int i = 0; i < np_; i++) {
                int64_t s = scales[i];
                if (trn[i]) {
                    if (uns[i]) {
                        const uint32_t *pc = (const uint32_t *)pb[i] + m;
                        for (Py_ssize_t j = 0; j < N; j++)
                            dr[j] += s * (int64_t)pc[j * M];
                    } else {
                        const int32_t *pc = (const int32_t *)pb[i] + m;
                        for (Py_ssize_t j = 0; j < N; j++)
                            dr[j] += s * (int64_t)pc[j * M];
                    }
                } else if (uns[i]) {
                    const uint32_t *pr = (const uint32_t *)pb[i] + m * N;
                    for (Py_ssize_t j = 0; j < N; j++)
                        dr[j] += s * (int64_t)pr[j];
                } else {
                    const int32_t *pr = (const int32_t *)pb[i] + m * N;
                    if (s == 1)
                        for (Py_ssize_t j = 0; j < N; j++)
                            dr[j] += pr[j];
                    else
                        for (Py_ssize_t j = 0; j < N; j++)
                            dr[j] += s * (int64_t)pr[j];
                }
            }
        }
    }
}

/* combine(dst, M, N, parts, rowc, colc, c0, accumulate): dst[m,n] = [dst +] sum_i s_i*part_i
 * + rowc[m] + colc[n] + c0, parts a sequence of (buffer, scale, unsigned, transposed): int32
 * (uint32 when unsigned) values, M x N (N x M when transposed); rowc / colc int64 or None. */
#define MAXPARTS 16
static PyObject *py_combine(PyObject *self, PyObject *args)
{
    Py_buffer dst, rowc = {0}, colc = {0}, parts[MAXPARTS];
    long long scales[MAXPARTS], c0;
    int uns[MAXPARTS], trn[MAXPARTS];
    Py_ssize_t M, N;
    PyObject *seq, *rowo, *colo;
    int acc, np_ = 0, have_r = 0, have_c = 0;
    if (!PyArg_ParseTuple(args, "w*nnOOOLp", &dst, &M, &N, &seq, &rowo, &colo, &c0, &acc))
        return NULL;
    PyObject *ret = NULL;
    PyObject *fast = PySequence_Fast(seq, "combine: parts must be a sequence");
    if (fast == NULL)
        goto done;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n > MAXPARTS || M < 0 || N < 0 || !need(&dst, M * N * 8, "combine dst")) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "combine: too many parts");
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(fast, i);
        if (!PyArg_ParseTuple(item, "y*Lpp", &parts[np_], &scales[np_], &uns[np_], &trn[np_]))
            goto done;
        np_++;
        if (!need(&parts[np_ - 1], M * N * 4, "combine part"))
            goto done;
    }
    if (rowo != Py_None) {
        if (PyObject_GetBuffer(rowo, &rowc, PyBUF_C_CONTIGUOUS) < 0)
            goto done;
        have_r = 1;
        if (!need(&rowc, M * 8, "combine rowc"))
            goto done;
    }
    if (colo != Py_None) {
        if (PyObject_GetBuffer(colo, &colc, PyBUF_C_CONTIGUOUS) < 0)
            goto done;
        have_c = 1;
        if (!need(&colc, N * 8, "combine colc"))
            goto done;
    }
    int64_t *d = dst.buf;
    const int64_t *rc = have_r ? rowc.buf : NULL, *cc = have_c ? colc.buf : NULL;
    const void *pb[MAXPARTS];
    for (int i = 0; i < np_; i++)
        pb[i] = parts[i].buf;
    Py_BEGIN_ALLOW_THREADS
    combine_loop(d, M, N, np_, pb, scales, uns, trn, rc, cc, c0, acc);
    Py_END_ALLOW_THREADS
    ret = Py_None;
    Py_INCREF(ret);
done:
    Py_XDECREF(fast);
    for (int i = 0; i < np_; i++)
        PyBuffer_Release(&parts[i]);
    if (have_r)
        PyBuffer_Release(&rowc);
    if (have_c)
        PyBuffer_Release(&colc);
    PyBuffer_Release(&dst);
    return ret;
}

/* count of indices equal to one of the values in `vals` (at most 4) */
AXM_VEC static Py_ssize_t count_hits(const uint8_t *p, Py_ssize_t n, const uint8_t *vals, int nv)
{
    uint8_t v[4];
    for (int i = 0; i < 4; i++)
        v[i] = vals[i < nv ? i : 0];
    Py_ssize_t c = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        c += (p[i] == v[0]) | (p[i] == v[1]) | (p[i] == v[2]) | (p[i] == v[3]);
    return c;
}

/* s[n] = row[idx[n]] for n < N (a gather from a table row that stays in L1) */
AXM_VEC static void set_row_lookup(int64_t *restrict s, const int64_t *restrict row,
                                   const uint8_t *restrict idx, Py_ssize_t N)
{
    for (Py_ssize_t n = 0; n < N; n++)
        s[n] = row[idx[n]];
}

AXM_VEC static void add_row(int64_t *restrict s, const int64_t *restrict x, Py_ssize_t N)
{
    for (Py_ssize_t n = 0; n < N; n++)
        s[n] += x[n];
}

/* outliers(S, M, K, N, ia, ib, V, oa, ra, ob, rb) -> (hits_a, hits_b): sparse corrections
 * S[m, :] += ra[ia[m,k], ib[k, :]] wherever ia[m,k] is one of the values oa, and
 * S[:, n] += rb[ia[:, k], ib[k,n]] wherever ib[k,n] is one of ob (ra, rb: V x V int64). */
static PyObject *py_outliers(PyObject *self, PyObject *args)
{
    Py_buffer S, ia, ib, oa, ra, ob, rb;
    Py_ssize_t M, K, N;
    int V;
    if (!PyArg_ParseTuple(args, "w*nnny*y*iy*y*y*y*", &S, &M, &K, &N, &ia, &ib, &V, &oa, &ra,
                          &ob, &rb))
        return NULL;
    PyObject *ret = NULL;
    Py_ssize_t ha = 0, hb = 0;
    if (V < 1 || V > MAXV || oa.len > 4 || ob.len > 4 || M < 0 || K < 0 || N < 0 ||
        !need(&S, M * N * 8, "outliers S") || !need(&ia, M * K, "outliers ia") ||
        !need(&ib, K * N, "outliers ib") || (oa.len && !need(&ra, (Py_ssize_t)V * V * 8, "ra")) ||
        (ob.len && !need(&rb, (Py_ssize_t)V * V * 8, "rb"))) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "outliers: bad arguments");
        goto done;
    }
    const uint8_t *xa = ia.buf, *xb = ib.buf, *va = oa.buf, *vb = ob.buf;
    int64_t *s = S.buf;
    int bad = 0, nomem = 0;
    Py_BEGIN_ALLOW_THREADS
    bad = (M > 0 && K > 0 && max_u8(xa, M * K) >= V) || (K > 0 && N > 0 && max_u8(xb, K * N) >= V);
    if (!bad && oa.len) {
        /* block of KB rows of b at a time: the residual rows R_j[k, :] = ra[va[j], b[k, :]]
         * are looked up once per block, and every hit (m, k) adds one of them to S row m
         * (a vector add; the lookups are not repeated per hit) */
        const int64_t *r = ra.buf;
        ha = count_hits(xa, M * K, va, (int)oa.len);
        Py_ssize_t KB = N > 0 ? (32768 / N > 0 ? 32768 / N : 1) : 1;
        KB = KB < K ? KB : K;
        int64_t *R = ha ? malloc(sizeof(int64_t) * (size_t)(KB * N * oa.len + 1)) : NULL;
        if (ha && R == NULL) {
            nomem = 1;
        } else if (ha) {
            for (Py_ssize_t k0 = 0; k0 < K; k0 += KB) {
                Py_ssize_t k1 = k0 + KB < K ? k0 + KB : K;
                for (Py_ssize_t j = 0; j < oa.len; j++)
                    for (Py_ssize_t k = k0; k < k1; k++)
                        set_row_lookup(R + (j * KB + k - k0) * N, r + (size_t)va[j] * V,
                                       xb + k * N, N);
                for (Py_ssize_t m = 0; m < M; m++) {
                    const uint8_t *row = xa + m * K;
                    if (!count_hits(row + k0, k1 - k0, va, (int)oa.len))
                        continue;
                    for (Py_ssize_t k = k0; k < k1; k++)
                        for (Py_ssize_t j = 0; j < oa.len; j++)
                            if (row[k] == va[j])
                                add_row(s + m * N, R + (j * KB + k - k0) * N, N);
                }
            }
        }
        free(R);
    }
    if (!bad && ob.len) {
        /* the hits (k, n) in k order, then one pass per output row: S row m and a row m stay
         * in cache (a column-wise pass would stride through S and a) */
        const int64_t *r = rb.buf;
        hb = count_hits(xb, K * N, vb, (int)ob.len);
        /* a hit's b value is one of the (at most 4) outlier values vb[j], so the residuals it
         * needs are column vb[j] of rb: copied once into a small table (L1-resident) */
        Py_ssize_t *hk = hb ? malloc(sizeof(Py_ssize_t) * 2 * hb) : NULL;
        int64_t *col = hb ? malloc(sizeof(int64_t) * 4 * V) : NULL;
        if (hb && (hk == NULL || col == NULL)) {
            nomem = 1;
        } else if (hb) {
            Py_ssize_t *hn = hk + hb, h = 0;
            for (Py_ssize_t k = 0; k < K; k++) {
                const uint8_t *bk = xb + k * N;
                for (Py_ssize_t n = 0; n < N; n++) {
                    int hit = -1;
                    for (Py_ssize_t i = 0; i < ob.len; i++)
                        hit = bk[n] == vb[i] ? (int)i : hit;
                    if (hit >= 0) {
                        hk[h] = k;
                        hn[h] = n * 4 + hit;        /* output column and outlier slot */
                        h++;
                    }
                }
            }
            for (Py_ssize_t i = 0; i < ob.len; i++)
                for (int v = 0; v < V; v++)
                    col[i * V + v] = r[(size_t)v * V + vb[i]];
            for (Py_ssize_t m = 0; m < M; m++) {
                const uint8_t *am = xa + m * K;
                int64_t *sm = s + m * N;
                for (Py_ssize_t i = 0; i < h; i++)
                    sm[hn[i] >> 2] += col[(hn[i] & 3) * V + am[hk[i]]];
            }
        }
        free(hk);
        free(col);
    }
    Py_END_ALLOW_THREADS
    if (nomem) {
        PyErr_NoMemory();
        goto done;
    }
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "outliers: index outside the table");
        goto done;
    }
    ret = Py_BuildValue("nn", ha, hb);
done:
    PyBuffer_Release(&S); PyBuffer_Release(&ia); PyBuffer_Release(&ib); PyBuffer_Release(&oa);
    PyBuffer_Release(&ra); PyBuffer_Release(&ob); PyBuffer_Release(&rb);
    return ret;
}

static PyMethodDef methods[] = {
    {"features", py_features, METH_NOARGS, "CPU support of each kernel: {name: 0/1}."},
    {"rowadd", py_rowadd, METH_VARARGS, "Table GEMM, gather-then-row-add (see module source)."},
    {"permute", py_permute, METH_VARARGS, "Table GEMM, register permute (see module source)."},
    {"index8", py_index8, METH_VARARGS, "Range check and offset to uint8 in one pass."},
    {"expand", py_expand, METH_VARARGS, "Per-value uint8 tables applied to an index matrix."},
    {"lutsum", py_lutsum, METH_VARARGS, "Row or column sums of an int64 per-value table."},
    {"combine", py_combine, METH_VARARGS, "int64 output from scaled int32 parts + corrections."},
    {"outliers", py_outliers, METH_VARARGS, "Sparse corrections for a few out-of-window values."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "sim.kernels._native",
    "Compiled kernels of sim.emulate (exact integer arithmetic; see sim/kernels/_native.c).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__native(void)
{
    return PyModule_Create(&module);
}
