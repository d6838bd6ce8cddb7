/*
 * geoattest GPU responder: the timed answer z_j = SHA-256(r || c_j) computed on the GPU.
 *
 * Why a GPU responder: the answer must come from the chip, and from something that never
 * queues behind the chip's own workload while the landmark's clock runs. Two designs:
 *
 *   geoattest_armed  resident kernel, launched ("armed") BEFORE the round opens, so any
 *                    wait for an SM happens before the clock starts. It polls host-mapped
 *                    (zero-copy pinned) memory for a challenge, answers into the same
 *                    mailbox, and exits when the host sets the stop flag or its deadline
 *                    passes (it can never spin forever).
 *   geoattest_once   one small kernel launched per challenge: the comparison design; its
 *                    launch queues behind the workload's kernels while the clock runs.
 *
 * The SHA-256 below is __host__ __device__ so the same source is built for the host (gcc,
 * or nvcc's host pass) and checked against hashlib (tests/unit/gpu). The file compiles
 * under nvcc, NVRTC (CuPy's RawModule) and plain C; it includes no header.
 *
 * Mailbox layout (bytes; attestor/gpu/cuda.py mirrors it). Host-written and device-written
 * words sit on different 64-byte lines.
 *     0  u32  seq_in     host: number of the challenge now in the mailbox (1, 2, ...)
 *     4  u32  stop       host: nonzero closes the round
 *     8  u32  generation host: the round now armed; a kernel of another round exits at once
 *    16  u8[16] challenge
 *    64  u32  state      device: (generation << 2) | 1 armed, 2 closed by stop, 3 expired
 *    68  u32  seq_out    device: number of the challenge whose answer is in the mailbox
 *    96  u8[32] answer
 */

#if !defined(__CUDACC__)
#define __host__
#define __device__
#endif

typedef unsigned int ga_u32;
typedef unsigned char ga_u8;
typedef unsigned long long ga_u64;

#define GA_BOX_SEQ_IN 0
#define GA_BOX_STOP 4
#define GA_BOX_GENERATION 8
#define GA_BOX_CHALLENGE 16
#define GA_BOX_STATE 64
#define GA_BOX_SEQ_OUT 68
#define GA_BOX_ANSWER 96

#define GA_STATE_ARMED 1u
#define GA_STATE_CLOSED 2u
#define GA_STATE_EXPIRED 3u

#define GA_K_VALUES                                                                        \
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u,          \
        0x923f82a4u, 0xab1c5ed5u, 0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u,      \
        0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u, 0xe49b69c1u, 0xefbe4786u,      \
        0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,      \
        0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u,      \
        0x06ca6351u, 0x14292967u, 0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u,      \
        0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u, 0xa2bfe8a1u, 0xa81a664bu,      \
        0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,      \
        0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au,      \
        0x5b9cca4fu, 0x682e6ff3u, 0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u,      \
        0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u

#if defined(__CUDA_ARCH__)
#define GA_UNROLL _Pragma("unroll") /* keeps w[64] in registers, not local memory */
#else
#define GA_UNROLL
#endif

#if defined(__CUDACC__)
__constant__ ga_u32 ga_k_device[64] = {GA_K_VALUES};
#endif
#if !defined(__CUDA_ARCH__) && !defined(__CUDACC_RTC__)
static const ga_u32 ga_k_host[64] = {GA_K_VALUES};
#endif
#if defined(__CUDA_ARCH__)
#define GA_K ga_k_device
#else
#define GA_K ga_k_host
#endif

__host__ __device__ static inline ga_u32 ga_rotr(ga_u32 x, ga_u32 n)
{
    return (x >> n) | (x << (32u - n));
}

__host__ __device__ static inline ga_u32 ga_load_be(const ga_u8* p)
{
    return ((ga_u32)p[0] << 24) | ((ga_u32)p[1] << 16) | ((ga_u32)p[2] << 8) | (ga_u32)p[3];
}

__host__ __device__ static inline void ga_store_be(ga_u8* p, ga_u32 v)
{
    p[0] = (ga_u8)(v >> 24);
    p[1] = (ga_u8)(v >> 16);
    p[2] = (ga_u8)(v >> 8);
    p[3] = (ga_u8)v;
}

/* z = SHA-256(secret[32] || challenge[16]): 48 bytes, so exactly one compression block. */
__host__ __device__ static inline void ga_answer(const ga_u8* secret, const ga_u8* challenge,
                                                 ga_u8* out)
{
    ga_u32 w[64];
    ga_u32 s[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                   0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
    ga_u32 a, b, c, d, e, f, g, h, t1, t2;
    int i;
    GA_UNROLL
    for (i = 0; i < 8; ++i) {
        w[i] = ga_load_be(secret + 4 * i);
    }
    GA_UNROLL
    for (i = 0; i < 4; ++i) {
        w[8 + i] = ga_load_be(challenge + 4 * i);
    }
    w[12] = 0x80000000u; /* the padding bit right after the 48 message bytes */
    w[13] = 0u;
    w[14] = 0u;
    w[15] = 48u * 8u; /* message length in bits */
    GA_UNROLL
    for (i = 16; i < 64; ++i) {
        ga_u32 s0 = ga_rotr(w[i - 15], 7u) ^ ga_rotr(w[i - 15], 18u) ^ (w[i - 15] >> 3);
        ga_u32 s1 = ga_rotr(w[i - 2], 17u) ^ ga_rotr(w[i - 2], 19u) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = s[0]; b = s[1]; c = s[2]; d = s[3]; e = s[4]; f = s[5]; g = s[6]; h = s[7];
    GA_UNROLL
    for (i = 0; i < 64; ++i) {
        t1 = h + (ga_rotr(e, 6u) ^ ga_rotr(e, 11u) ^ ga_rotr(e, 25u)) + ((e & f) ^ (~e & g))
             + GA_K[i] + w[i];
        t2 = (ga_rotr(a, 2u) ^ ga_rotr(a, 13u) ^ ga_rotr(a, 22u)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    s[0] += a; s[1] += b; s[2] += c; s[3] += d; s[4] += e; s[5] += f; s[6] += g; s[7] += h;
    GA_UNROLL
    for (i = 0; i < 8; ++i) {
        ga_store_be(out + 4 * i, s[i]);
    }
}

#if !defined(__CUDA_ARCH__) && !defined(__CUDACC_RTC__)
/* Host entry point, for checking the device code's hash against hashlib through ctypes. */
#if defined(__cplusplus)
extern "C"
#endif
void geoattest_answer_host(const unsigned char* secret, const unsigned char* challenge,
                           unsigned char* out)
{
    ga_answer(secret, challenge, out);
}
#endif

#if defined(__CUDACC__)
/* Mapped host memory is reached with system-scope ordering (acquire fence, release store),
 * so the challenge is read only after its sequence number, and the answer is visible
 * before its number. */
__device__ static inline ga_u32 ga_load_acquire(const volatile ga_u8* p)
{
    ga_u32 v;
    asm volatile("ld.acquire.sys.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

__device__ static inline void ga_store_release(volatile ga_u8* p, ga_u32 v)
{
    asm volatile("st.release.sys.u32 [%0], %1;" : : "l"(p), "r"(v) : "memory");
}

/* One PCIe read per poll: seq_in, stop and generation share one 16-byte vector. */
__device__ static inline void ga_read_control(const volatile ga_u8* box, ga_u32* seq,
                                              ga_u32* stop, ga_u32* generation)
{
    ga_u32 a, b, c, d;
    asm volatile("ld.volatile.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(a), "=r"(b), "=r"(c), "=r"(d)
                 : "l"(box + GA_BOX_SEQ_IN)
                 : "memory");
    asm volatile("" : : "r"(d)); /* the fourth word is padding */
    *seq = a;
    *stop = b;
    *generation = c;
}

/* After seeing a new seq_in: nothing read after this is older than that read. */
__device__ static inline void ga_fence_acquire(void)
{
    asm volatile("fence.acq_rel.sys;" : : : "memory");
}

__device__ static inline ga_u64 ga_now_ns(void)
{
    ga_u64 t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

__device__ static inline void ga_read_challenge(const volatile ga_u8* box, ga_u8* c)
{
    ga_u32 x, y, z, v;
    asm volatile("ld.volatile.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(x), "=r"(y), "=r"(z), "=r"(v)
                 : "l"(box + GA_BOX_CHALLENGE)
                 : "memory");
    ga_u32 words[4] = {x, y, z, v};
    for (int i = 0; i < 4; ++i) { /* little-endian words back to the host's byte order */
        c[4 * i] = (ga_u8)words[i];
        c[4 * i + 1] = (ga_u8)(words[i] >> 8);
        c[4 * i + 2] = (ga_u8)(words[i] >> 16);
        c[4 * i + 3] = (ga_u8)(words[i] >> 24);
    }
}

__device__ static inline void ga_write_answer(volatile ga_u8* box, const ga_u8* z, ga_u32 seq)
{
    ga_u32 words[8];
    for (int i = 0; i < 8; ++i) {
        words[i] = (ga_u32)z[4 * i] | ((ga_u32)z[4 * i + 1] << 8) | ((ga_u32)z[4 * i + 2] << 16)
                   | ((ga_u32)z[4 * i + 3] << 24);
    }
    asm volatile("st.volatile.v4.u32 [%0], {%1, %2, %3, %4};"
                 :
                 : "l"(box + GA_BOX_ANSWER), "r"(words[0]), "r"(words[1]), "r"(words[2]),
                   "r"(words[3])
                 : "memory");
    asm volatile("st.volatile.v4.u32 [%0], {%1, %2, %3, %4};"
                 :
                 : "l"(box + GA_BOX_ANSWER + 16), "r"(words[4]), "r"(words[5]), "r"(words[6]),
                   "r"(words[7])
                 : "memory");
    ga_store_release(box + GA_BOX_SEQ_OUT, seq);
}

/* The armed responder: one thread, resident for one round. r stays in device memory and
 * registers; it never travels back to the host. */
extern "C" __global__ void geoattest_armed(const ga_u8* secret, ga_u64 box_addr,
                                           ga_u64 timeout_ns, ga_u32 generation)
{
    if (blockIdx.x != 0 || threadIdx.x != 0) {
        return;
    }
    volatile ga_u8* box = (volatile ga_u8*)box_addr;
    if (ga_load_acquire(box + GA_BOX_GENERATION) != generation) {
        return; /* a stale launch from an earlier round: the mailbox is not ours */
    }
    ga_u8 r[32];
    ga_u8 c[16];
    ga_u8 z[32];
    for (int i = 0; i < 32; ++i) {
        r[i] = secret[i];
    }
    ga_u32 last = ga_load_acquire(box + GA_BOX_SEQ_IN);
    ga_u32 seq, stop, current;
    ga_u32 final_state = GA_STATE_EXPIRED;
    const ga_u64 start = ga_now_ns();
    ga_store_release(box + GA_BOX_STATE, (generation << 2) | GA_STATE_ARMED);
    for (;;) {
        ga_read_control(box, &seq, &stop, &current);
        if (seq != last) {
            ga_fence_acquire(); /* the challenge was written before its number */
            ga_read_challenge(box, c);
            ga_answer(r, c, z);
            ga_write_answer(box, z, seq);
            last = seq;
            continue; /* the next challenge may already be there */
        }
        if (stop != 0u) {
            final_state = GA_STATE_CLOSED;
            break;
        }
        if (current != generation) {
            return; /* the host moved on to another round without us */
        }
        if (ga_now_ns() - start > timeout_ns) {
            break;
        }
    }
    for (int i = 0; i < 32; ++i) {
        r[i] = 0;
    }
    ga_store_release(box + GA_BOX_STATE, (generation << 2) | final_state);
}

/* The comparison design: one launch per challenge, the challenge in the kernel's arguments. */
extern "C" __global__ void geoattest_once(const ga_u8* secret, ga_u64 box_addr, ga_u32 c0,
                                          ga_u32 c1, ga_u32 c2, ga_u32 c3, ga_u32 seq)
{
    if (blockIdx.x != 0 || threadIdx.x != 0) {
        return;
    }
    volatile ga_u8* box = (volatile ga_u8*)box_addr;
    ga_u8 r[32];
    ga_u8 c[16];
    ga_u8 z[32];
    ga_u32 words[4] = {c0, c1, c2, c3};
    for (int i = 0; i < 32; ++i) {
        r[i] = secret[i];
    }
    for (int i = 0; i < 4; ++i) {
        c[4 * i] = (ga_u8)words[i];
        c[4 * i + 1] = (ga_u8)(words[i] >> 8);
        c[4 * i + 2] = (ga_u8)(words[i] >> 16);
        c[4 * i + 3] = (ga_u8)(words[i] >> 24);
    }
    ga_answer(r, c, z);
    ga_write_answer(box, z, seq);
}
#endif
