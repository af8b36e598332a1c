// The simt emulation layer: a CUDA block on the CPU. platform.cuh's simt
// branch (ANVIL_SIMT, host compiler) builds every primitive on it, so the
// CUDA algorithm of every rTask runs with 256 threads per block.
//
// A block's threads are cooperative fibers (Boost.Context fcontext: a
// switch saves a few registers, no system call) on the worker OS thread
// that plays the block; a worker runs one block's task at a time, so the
// block state below is per OS thread. A fiber runs until it reaches a
// rendezvous (barrier, warp collective) or backs off; the scheduler then
// sweeps the other fibers and completes what every participant reached:
// a barrier when all 256 threads wait at it, a warp collective (shuffle,
// __syncwarp, mma.sync, ldmatrix) when every lane of its mask waits at the
// same one.
// Nothing runnable and nothing complete is a divergence, reported.
//
// Thread-level checks (on unless anvil_simt_configure turns them off),
// every failure naming the threads and the byte offset:
//   - shared memory is a set of named regions behind guard gaps; an access
//     outside one is out of bounds and is not performed;
//   - a shadow per shared byte holds its last writer and readers in the
//     current barrier interval: two threads touching one byte between two
//     barriers, one of them writing, is a race;
//   - a read of a byte no thread wrote since the task began (the memory
//     holds poison, 0xff) is an error, reported at the next barrier unless
//     another thread's write before it shows a race (a missing barrier);
//   - cp.async data lands only at the wait_group that covers it; until
//     then its bytes are poison and reading them is an error;
//   - ldmatrix reads its rows through the same checks, each row as read
//     by the lane that gave its address;
//   - a warp collective whose mask names a lane that exited or waits
//     elsewhere, a barrier some thread never reaches;
//   - wgmma (sm_90a) is a warpgroup collective of 128 threads: a missing
//     wgmma.fence, a descriptor address or offset that is not a 16-byte
//     multiple, a swizzle other than 128 bytes (not emulated), a 128-byte
//     swizzled start outside its atom's first row, accumulators read
//     (anvil_wgmma_ready) or written before the wait_group that covers
//     their wgmma, operands changed before it, a task ending with wgmma in
//     flight; its operands are read through the checks above, and a byte
//     a thread wrote through the generic proxy (st.shared, a cp.async)
//     without a fence.proxy.async after it is refused to wgmma's reads and
//     to a bulk copy's writes;
//   - cp.async.bulk lands when its mbarrier's phase completes: its size a
//     multiple of 16, its bytes poison (reads and writes refused) until
//     then, read only by a thread that saw the phase complete (or any
//     thread after a barrier that followed such a wait), a task ending
//     with one never landed; a tensor copy
//     (cp.async.bulk.tensor) the same, and a map the host did not encode
//     or a box not aligned for its swizzle refused.
// This file is compiled only in the simt configuration; it tests nothing
// but ANVIL_SIMT (platform.cuh alone tests __CUDACC__).
#ifndef ANVIL_RTASKS_SIMT_CUH
#define ANVIL_RTASKS_SIMT_CUH
#ifdef ANVIL_SIMT

#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <boost/context/detail/fcontext.hpp>
#include <bitset>
#include <iterator>
#include <map>
#include <mutex>
#include <vector>

#include "params.cuh"
#include "tensor_map.cuh"

namespace anvil_simt {

namespace fc = boost::context::detail;

const int kThreads = 256, kWarp = 32, kWarps = kThreads / kWarp;
const size_t kStack = 128 * 1024;         // per fiber, committed only as touched
const size_t kWindow = 1 << 20;           // shared memory address space of a block
const int kGuard = 64;                    // bytes between two shared regions
const int kMaxCopies = 64;                // cp.async in flight per thread
const int kMaxMaps = 8;                   // tensor maps one thread acquires in a task
const unsigned short kNobody = 0xffff;
const unsigned short kAsyncProxy = 0xfffe;  // the writer of bytes a bulk copy landed
const int kWarpgroup = 128, kWarpgroups = kThreads / kWarpgroup;

enum State : unsigned char { RUNNABLE, AT_BARRIER, AT_WARP, AT_WARPGROUP, EXITED };
enum WarpOp : unsigned char { W_SHFL_XOR, W_SYNCWARP, W_MMA, W_MMA_TF32, W_LDMATRIX };
enum Access { READ, WRITE, ASYNC_ISSUE, ASYNC_LAND, BULK_ISSUE, BULK_LAND };
// Warpgroup collectives (wgmma.*.sync.aligned: the 128 threads of a warpgroup).
enum GroupOp : unsigned char { G_FENCE, G_MMA, G_COMMIT, G_WAIT };

inline const char* op_name(WarpOp op) {
    return op == W_SHFL_XOR   ? "shfl.sync.bfly"
           : op == W_SYNCWARP ? "bar.warp.sync"
           : op == W_MMA      ? "mma.sync.m16n8k16"
           : op == W_MMA_TF32 ? "mma.sync.m16n8k8.tf32"
                              : "ldmatrix.sync.m8n8";
}

// ---- the run's first failure (all workers) and the switch of the checks
struct Report {
    std::mutex mu;
    bool failed = false;
    int task = -1;
    char msg[1024] = {0};
};
static Report g_report;
static int g_checks = 1;

typedef float (*Widen)(unsigned short);  // an f16 or bf16 value, exactly as f32

struct Copy {  // one cp.async: its destination and the bytes it will land
    unsigned char* dst;
    unsigned char data[16];
    int size;  // 4, 8 or 16
    unsigned group;
};

struct Fiber {
    fc::fcontext_t ctx;
    State state;
    WarpOp op;
    unsigned mask;
    // warp collectives: this lane's operands and result
    unsigned in, arg, out;
    unsigned a[4], b[2];
    float c[4];
    bool bf16;
    Widen widen;
    // ldmatrix: this lane's row address, the number of matrices, .trans
    // (the result comes back in a[])
    const void* row;
    int num;
    bool trans;
    // cp.async: copies not landed yet; `committed` groups closed so far;
    // `carry`: the task handed its copies in flight to the worker's next
    // task (cp_async_carry), which keeps them and the group count
    Copy copies[kMaxCopies];
    int ncopies = 0;
    unsigned committed = 0;
    bool carry = false;
    // While set (expect_l2_copies): who issues the copies that follow, each
    // of which must lie in the block's prefetched ranges.
    const char* expect_l2 = nullptr;
    // wgmma: the warpgroup collective this thread waits at, its operands
    // (descriptors, accumulator registers, N, scale-d), wait_group's count
    GroupOp gop;
    unsigned long long da, db;
    float* acc;
    int n, wait_n;
    bool accumulate, mn_b;  // scale-d; imm-trans-b (B N-major)
    int spins = 0;  // mbarrier.try_wait.parity failures in a row
    // Tensor maps this thread acquired in the task (fence.proxy.tensormap).
    const void* maps[kMaxMaps];
    int nmaps = 0;
    // fence.proxy.async executed so far: a shared byte this thread wrote
    // (st.shared, or a cp.async landing) reaches the async proxy (wgmma's
    // reads, a bulk copy's writes) only once this count has grown past the
    // write's (Shadow::w_fence).
    unsigned proxy_fences = 0;
};

// One wgmma.mma_async.m64nNk16 in flight: the operands it read at issue
// (raw 16-bit values, compared again at its wait: the hardware reads them
// at some point in between), and every thread's accumulators as they
// will be once it completes, which its thread sees only at the wait_group
// that covers its commit group.
struct Wgmma {
    unsigned group;
    int n;
    bool mn_b;
    unsigned long long da, db;
    unsigned short a[64][16], b[256][16];
    float* acc[kWarpgroup];
    float result[kWarpgroup][128];
};
struct Warpgroup {
    std::vector<Wgmma> inflight;
    unsigned committed = 0;
    bool fenced = false;  // a wgmma.fence since the accumulators were last handed back
};

// An mbarrier object in shared memory (mbarrier.init): the arrivals its
// phase still needs, its transaction count (bytes expected less bytes
// completed), its phase, and the bulk copies that land when it completes.
struct BulkCopy {
    unsigned char* dst;
    std::vector<unsigned char> data;
    int tid;
};
struct Mbar {
    const void* at;
    int count, pending;
    long long tx;
    unsigned phase;
    std::vector<BulkCopy> copies;
    unsigned landed[2];  // per parity, the Landing of its last completed phase (0: none)
};
// What one completed mbarrier phase landed may be read by the threads
// that saw the phase complete (try_wait.parity true) and, after the next
// barrier, by every thread: the async proxy's writes are ordered before a
// read by the wait, not by the issue or by a barrier alone.
struct Landing {
    std::bitset<kThreads> seen;
    unsigned seen_iv;  // the barrier interval of the first thread that saw it (0: none yet)
};

struct Shadow {  // one shared byte
    unsigned w_iv, r_iv;            // barrier interval of the last write, of the readers
    unsigned short w_tid, r_tid, r_tid2;
    unsigned char pending;          // a cp.async to it has not landed
    unsigned landing;               // w_tid kAsyncProxy: Block::landings[landing - 1] wrote it
    unsigned w_fence;               // the writer's Fiber::proxy_fences when its write took effect
};

struct Region {
    char name[24];
    int begin, bytes;
};

struct Block {
    char* stacks = nullptr;
    Fiber f[kThreads];
    fc::fcontext_t sched = nullptr;
    int cur = 0, task = -1, op = -1, worker = 0;
    AnvilStatus* status = nullptr;
    bool (*body)(void*) = nullptr;
    void* body_ctx = nullptr;
    bool result = false, abandoned = false;
    unsigned iv = 0, task_iv = 0;  // barrier intervals: now, and when the task began
    unsigned char* window = nullptr;
    Shadow* shadow = nullptr;
    int used = 0;
    Region regions[8];
    int nregions = 0;
    // The first read of an unwritten byte in this interval: reported at the
    // next barrier unless a write by another thread shows it was a race.
    long unwritten_at = -1;
    int unwritten_tid = 0;
    const Region* unwritten_region = nullptr;
    const char* unwritten_how = "read";
    // How a READ is named in reports: "read", or "read (ldmatrix)" while a
    // warp's ldmatrix reads its rows.
    const char* reading = "read";
    bool async_proxy_reading = false;  // the READs are wgmma's, through the async proxy
    Warpgroup wg[kWarpgroups];
    std::vector<Mbar> mbars;
    std::vector<Landing> landings;  // this task's
    unsigned landing_now = 0;       // the Landing whose copies are landing
    // What the block's L2 prefetches covered in the current task, as disjoint
    // ranges [begin, end) by begin, for the checks that the ring's later
    // stages and a GEMM tile's stages of B were prefetched (expect_prefetched,
    // expect_l2_copy).
    std::map<unsigned long long, unsigned long long> prefetched;

    Block() {
        const size_t page = (size_t)sysconf(_SC_PAGESIZE);
        stacks = (char*)mmap(0, kStack * kThreads, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                             -1, 0);
        window = (unsigned char*)mmap(0, kWindow, PROT_READ | PROT_WRITE,
                                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        shadow = (Shadow*)mmap(0, kWindow * sizeof(Shadow), PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (stacks == MAP_FAILED || window == MAP_FAILED || shadow == MAP_FAILED) {
            fprintf(stderr, "anvil simt: cannot map the fiber stacks and shared memory\n");
            abort();
        }
        // A guard page at the bottom of every stack: an overflow faults.
        for (int t = 0; t < kThreads; ++t) mprotect(stacks + (size_t)t * kStack, page, PROT_NONE);
    }
    ~Block() {
        munmap(stacks, kStack * kThreads);
        munmap(window, kWindow);
        munmap(shadow, kWindow * sizeof(Shadow));
    }
};

// One block per worker OS thread, made on its first task.
inline Block& block() {
    static thread_local Block* b = nullptr;
    static thread_local struct Owner {
        Block** p;
        ~Owner() { delete *p; }
    } owner = {&b};
    (void)owner;
    if (!b) b = new Block();
    return *b;
}

inline int tid() { return block().cur; }

// ---- failures
// Records the first failure of the run and stops every block.
inline void fail(const char* fmt, ...) {
    Block& b = block();
    {
        std::lock_guard<std::mutex> lock(g_report.mu);
        if (!g_report.failed) {
            g_report.failed = true;
            g_report.task = b.task;
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(g_report.msg, sizeof g_report.msg, fmt, ap);
            va_end(ap);
        }
    }
    if (b.status) {
        int ok = ANVIL_OK;
        if (__atomic_compare_exchange_n(&b.status->code, &ok, (int)ANVIL_SIMT_CHECK, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED))
            b.status->task = b.task;
    }
}
inline bool quiet() { return !g_checks || g_report.failed; }

// "thread 37 (warp 1 lane 5)"
struct Who {
    char s[40];
    explicit Who(int t) { snprintf(s, sizeof s, "thread %d (warp %d lane %d)", t, t / kWarp, t % kWarp); }
};

// ---- fibers and the scheduler
inline void yield() {
    Block& b = block();
    const fc::transfer_t r = fc::jump_fcontext(b.sched, nullptr);
    b.sched = r.fctx;
}

inline void end_of_thread(Block& b, int me);

inline void fiber_main(fc::transfer_t t) {
    Block& b = *(Block*)t.data;
    b.sched = t.fctx;
    const int me = b.cur;
    const bool r = b.body(b.body_ctx);
    if (me == 0) b.result = r;
    end_of_thread(b, me);
    b.f[me].state = EXITED;
    fc::jump_fcontext(b.sched, nullptr);  // never resumed
}

inline void resume(Block& b, int t) {
    b.cur = t;
    const fc::transfer_t r = fc::jump_fcontext(b.f[t].ctx, &b);
    b.f[t].ctx = r.fctx;
}

inline bool resolve_warpgroups(Block& b);
inline const char* group_op_name(GroupOp op);
inline void end_of_task(Block& b);

// Lanes of `mask` in warp w that cannot take part in its collective, as text.
inline void describe_lane(const Block& b, int t, char* out, size_t n) {
    const Fiber& f = b.f[t];
    if (f.state == EXITED) snprintf(out, n, "had ended the task");
    else if (f.state == AT_BARRIER) snprintf(out, n, "waits at a block barrier");
    else if (f.state == AT_WARP) snprintf(out, n, "waits at %s with mask 0x%08x", op_name(f.op), f.mask);
    else if (f.state == AT_WARPGROUP) snprintf(out, n, "waits at %s", group_op_name(f.gop));
    else snprintf(out, n, "is running");
}

inline void execute_warp(Block& b, int w, unsigned mask);

// At a barrier or the task's end: an unwritten read nobody raced with.
inline void flush_unwritten(Block& b) {
    if (b.unwritten_at < 0) return;
    if (!quiet()) {
        const Who who(b.unwritten_tid);
        fail("%s %s byte %ld of shared region '%s', which no thread wrote since the task began", who.s,
             b.unwritten_how, b.unwritten_at, b.unwritten_region->name);
    }
    b.unwritten_at = -1;
}

// Completes the warp collectives every lane of whose mask arrived; reports a
// lane named by a mask that exited. True when something completed.
inline bool resolve_warps(Block& b) {
    bool progressed = false;
    for (int w = 0; w < kWarps; ++w)
        for (int l = 0; l < kWarp; ++l) {
            const Fiber& f = b.f[w * kWarp + l];
            if (f.state != AT_WARP) continue;
            bool all = true;
            for (int k = 0; k < kWarp && all; ++k) {
                if (!(f.mask >> k & 1u)) continue;
                const Fiber& o = b.f[w * kWarp + k];
                if (o.state == EXITED && !quiet()) {
                    const Who who(w * kWarp + l);
                    fail("%s: %s with mask 0x%08x names lane %d, which had ended the task", who.s, op_name(f.op), f.mask,
                         k);
                    b.abandoned = true;
                    return false;
                }
                all = o.state == AT_WARP && o.op == f.op && o.mask == f.mask;
            }
            if (all) {
                execute_warp(b, w, f.mask);
                progressed = true;
            }
        }
    return progressed;
}

// Nothing can run: name who waits for whom.
inline void report_stuck(Block& b) {
    char what[96];
    for (int t = 0; t < kThreads; ++t) {
        const Fiber& f = b.f[t];
        if (f.state == AT_WARP) {
            for (int k = 0; k < kWarp; ++k) {
                const int o = (t / kWarp) * kWarp + k;
                if (!(f.mask >> k & 1u)) continue;
                if (b.f[o].state == AT_WARP && b.f[o].op == f.op && b.f[o].mask == f.mask) continue;
                describe_lane(b, o, what, sizeof what);
                const Who who(t);
                fail("%s waits at %s with mask 0x%08x for lane %d, which %s: the lanes of the mask did not all arrive",
                     who.s, op_name(f.op), f.mask, k, what);
                return;
            }
        }
    }
    for (int t = 0; t < kThreads; ++t) {
        const Fiber& f = b.f[t];
        if (f.state != AT_WARPGROUP) continue;
        for (int k = 0; k < kWarpgroup; ++k) {
            const int o = (t / kWarpgroup) * kWarpgroup + k;
            if (b.f[o].state == AT_WARPGROUP && b.f[o].gop == f.gop) continue;
            describe_lane(b, o, what, sizeof what);
            const Who who(t), other(o);
            fail("%s waits at %s for %s of its warpgroup, which %s: the warpgroup's 128 threads did not all arrive",
                 who.s, group_op_name(f.gop), other.s, what);
            return;
        }
    }
    int waiting = 0, other = -1;
    for (int t = 0; t < kThreads; ++t)
        if (b.f[t].state == AT_BARRIER) ++waiting;
        else if (other < 0) other = t;
    describe_lane(b, other < 0 ? 0 : other, what, sizeof what);
    const Who who(other < 0 ? 0 : other);
    fail("%d threads wait at a block barrier that %s never reaches: it %s", waiting, who.s, what);
}

// Runs body(ctx) as the 256 threads of a block: true when thread 0's body
// returned true and no thread diverged.
inline bool run_block(int task, int op, int worker, AnvilStatus* status, bool (*body)(void*), void* ctx) {
    Block& b = block();
    const bool keep_copies = !b.abandoned;  // an abandoned block's fibers carried nothing
    b.task = task;
    b.op = op;
    b.worker = worker;
    b.status = status;
    b.body = body;
    b.body_ctx = ctx;
    b.result = false;
    b.abandoned = false;
    b.task_iv = ++b.iv;  // every shared byte is unwritten for this task
    b.unwritten_at = -1;
    for (int g = 0; g < kWarpgroups; ++g) b.wg[g] = Warpgroup();
    b.mbars.clear();
    b.landings.clear();
    b.prefetched.clear();  // what a task's copies may count on, it prefetched itself (before its waits, or in its body)
    if (g_checks && b.used) memset(b.window, 0xff, (size_t)b.used);
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    for (int t = 0; t < kThreads; ++t) {
        Fiber& f = b.f[t];
        char* bottom = b.stacks + (size_t)t * kStack + page;
        f.ctx = fc::make_fcontext(bottom + (kStack - page), kStack - page, &fiber_main);
        f.state = RUNNABLE;
        if (!keep_copies || !f.carry) {
            f.ncopies = 0;
            f.committed = 0;
        }
        f.carry = false;
        f.expect_l2 = nullptr;
        f.nmaps = 0;
    }
    for (;;) {
        for (int t = 0; t < kThreads; ++t)
            if (b.f[t].state == RUNNABLE) resume(b, t);
        int exited = 0, at_barrier = 0, runnable = 0;
        for (int t = 0; t < kThreads; ++t) {
            exited += b.f[t].state == EXITED;
            at_barrier += b.f[t].state == AT_BARRIER;
            runnable += b.f[t].state == RUNNABLE;
        }
        if (exited == kThreads) {
            flush_unwritten(b);
            end_of_task(b);
            break;
        }
        if (at_barrier == kThreads) {  // every thread arrived: the next interval begins
            flush_unwritten(b);
            ++b.iv;
            for (int t = 0; t < kThreads; ++t) b.f[t].state = RUNNABLE;
            continue;
        }
        if (resolve_warps(b) || resolve_warpgroups(b) || runnable) continue;
        if (!b.abandoned) report_stuck(b);
        b.abandoned = true;  // the fibers are dropped; their stacks are reused
        break;
    }
    b.status = nullptr;
    return b.result && !b.abandoned;
}

inline void barrier() {
    Block& b = block();
    b.f[b.cur].state = AT_BARRIER;
    yield();
}

// Between two polls: the OS thread to the other workers, the block's
// other fibers their turn.
inline void backoff() {
    sched_yield();
    yield();
}

// ---- shared memory
// The region `name` of `bytes` bytes, made on first use and the same for
// every later task of this worker (16-byte aligned, guard gaps between).
inline void* shared(const char* name, int bytes) {
    Block& b = block();
    for (int i = 0; i < b.nregions; ++i)
        if (strcmp(b.regions[i].name, name) == 0) return b.window + b.regions[i].begin;
    const int begin = b.used + kGuard;
    if (b.nregions == 8 || (size_t)begin + (size_t)bytes + kGuard > kWindow) {
        fprintf(stderr, "anvil simt: shared region '%s' of %d bytes does not fit\n", name, bytes);
        abort();
    }
    Region& r = b.regions[b.nregions++];
    snprintf(r.name, sizeof r.name, "%s", name);
    r.begin = begin;
    r.bytes = bytes;
    b.used = (begin + bytes + 15) / 16 * 16;
    memset(b.window + begin, 0xff, (size_t)bytes);
    return b.window + begin;
}

inline const char* access_name(Access a) {
    return a == READ          ? block().reading
           : a == WRITE       ? "wrote"
           : a == ASYNC_ISSUE ? "started a cp.async to"
           : a == ASYNC_LAND  ? "landed a cp.async on"
           : a == BULK_ISSUE  ? "started a cp.async.bulk to"
                              : "landed a cp.async.bulk on";
}

// A byte a thread of this task wrote through the generic proxy that has
// not reached the async proxy: no fence.proxy.async by the writer since.
inline bool unfenced(const Block& b, const Shadow& s) {
    return s.w_iv >= b.task_iv && s.w_tid < kThreads && b.f[s.w_tid].proxy_fences == s.w_fence;
}
inline bool landing_seen(const Block& b, unsigned landing, int tid) {
    const Landing& l = b.landings[landing - 1];
    return l.seen[(size_t)tid] || (l.seen_iv != 0 && b.iv > l.seen_iv);
}

// Checks an access of n bytes at p by the current thread and updates the
// shadow. False: p is not inside one shared region, and the access must
// not be performed.
inline bool access(const void* p, int n, Access kind) {
    if (!g_checks) return true;
    Block& b = block();
    const int me = b.cur;
    const long off = (const unsigned char*)p - b.window;
    // The region the access belongs to, or the nearest one below it.
    const Region* r = nullptr;
    for (int i = 0; i < b.nregions; ++i)
        if (off >= b.regions[i].begin - kGuard && (!r || b.regions[i].begin > r->begin)) r = &b.regions[i];
    if (off < 0 || off >= (long)kWindow) r = nullptr;
    if (!r || off < r->begin || off + n > r->begin + r->bytes) {
        if (!quiet()) {
            const Who who(me);
            if (r)
                fail("%s %s %d bytes at byte %ld of shared region '%s', which has %d: out of bounds", who.s,
                     access_name(kind), n, off - r->begin, r->name, r->bytes);
            else
                fail("%s %s %d bytes at %p, which is not in shared memory: out of bounds", who.s, access_name(kind), n,
                     p);
        }
        return false;
    }
    if (g_report.failed) return true;
    const long at = off - r->begin;
    for (int i = 0; i < n; ++i) {
        Shadow& s = b.shadow[off + i];
        const bool written = s.w_iv >= b.task_iv;
        if (kind == READ) {
            if (!written) {
                if (b.unwritten_at < 0) {
                    b.unwritten_at = at + i;
                    b.unwritten_tid = me;
                    b.unwritten_region = r;
                    b.unwritten_how = b.reading;
                }
            } else if (s.pending) {
                const Who who(me), w(s.w_tid);
                fail("%s %s byte %ld of shared region '%s' before %s %s's copy to it: its data had not landed", who.s,
                     b.reading, at + i, r->name,
                     s.pending == 2 ? "the completion of the mbarrier phase of" : "the cp.async.wait_group of", w.s);
                return true;
            } else if (s.w_iv == b.iv && s.w_tid != me && s.w_tid != kAsyncProxy) {
                const Who who(me), w(s.w_tid);
                fail("shared-memory race: %s %s byte %ld of shared region '%s', which %s wrote, with no barrier "
                     "between",
                     who.s, b.reading, at + i, r->name, w.s);
                return true;
            } else if (b.async_proxy_reading && unfenced(b, s)) {
                const Who who(me), w(s.w_tid);
                fail("%s %s byte %ld of shared region '%s', which %s wrote through the generic proxy with no "
                     "fence.proxy.async after the write",
                     who.s, b.reading, at + i, r->name, w.s);
                return true;
            } else if (s.w_tid == kAsyncProxy && s.w_iv >= b.task_iv && s.landing && !landing_seen(b, s.landing, me)) {
                const Who who(me);
                fail("%s %s byte %ld of shared region '%s', which a cp.async.bulk landed, without waiting on its "
                     "mbarrier (no thread had seen the phase complete before a barrier, nor had this one)",
                     who.s, b.reading, at + i, r->name);
                return true;
            }
            if (s.r_iv != b.iv) {
                s.r_iv = b.iv;
                s.r_tid = (unsigned short)me;
                s.r_tid2 = kNobody;
            } else if (s.r_tid != me && s.r_tid2 == kNobody) {
                s.r_tid2 = (unsigned short)me;
            }
            continue;
        }
        // A bulk copy lands through the async proxy: the mbarrier, not a
        // barrier, orders it before its readers (who wait on the mbarrier).
        if (kind == BULK_LAND) {
            s.w_iv = b.iv;
            s.w_tid = kAsyncProxy;
            s.pending = 0;
            s.landing = b.landing_now;
            continue;
        }
        if (kind == BULK_ISSUE && unfenced(b, s)) {
            const Who who(me), w(s.w_tid);
            fail("%s %s byte %ld of shared region '%s', which %s wrote through the generic proxy with no "
                 "fence.proxy.async after the write",
                 who.s, access_name(kind), at + i, r->name, w.s);
            return true;
        }
        if (written && s.pending == 2) {
            const Who who(me), w(s.w_tid);
            fail("%s %s byte %ld of shared region '%s', the destination of %s's cp.async.bulk in flight", who.s,
                 access_name(kind), at + i, r->name, w.s);
            return true;
        }
        // A write: the issue of a cp.async writes the bytes from then on.
        if (written && s.w_iv == b.iv && s.w_tid != me && s.w_tid != kAsyncProxy) {
            const Who who(me), w(s.w_tid);
            fail("shared-memory race: %s and %s both wrote byte %ld of shared region '%s' with no barrier between",
                 w.s, who.s, at + i, r->name);
            return true;
        }
        if (s.r_iv == b.iv && s.r_iv >= b.task_iv && (s.r_tid != me || (s.r_tid2 != kNobody && s.r_tid2 != me))) {
            const Who who(me), rd(s.r_tid != me ? s.r_tid : s.r_tid2);
            fail("shared-memory race: %s %s byte %ld of shared region '%s', which %s read, with no barrier between",
                 who.s, access_name(kind), at + i, r->name, rd.s);
            return true;
        }
        s.w_iv = b.iv;
        s.w_tid = (unsigned short)me;
        s.pending = kind == ASYNC_ISSUE ? 1 : kind == BULK_ISSUE ? 2 : 0;
        s.landing = 0;
        s.w_fence = b.f[me].proxy_fences;
    }
    return true;
}

template <class T>
inline T load(const T* p) {
    T v;
    if (access(p, (int)sizeof(T), READ)) memcpy(&v, p, sizeof v);
    else memset(&v, 0xff, sizeof v);
    return v;
}
template <class T>
inline void store(T* p, T v) {
    if (access(p, (int)sizeof(T), WRITE)) memcpy(p, &v, sizeof v);
}

// Whether the block's prefetched ranges hold [a, a + bytes); *lo, *hi: the
// nearest range at or below a (0, 0 if none).
inline bool prefetched_holds(const Block& b, unsigned long long a, int bytes, unsigned long long* lo,
                             unsigned long long* hi) {
    auto it = b.prefetched.upper_bound(a);
    if (it == b.prefetched.begin()) return *lo = *hi = 0, false;
    --it;
    *lo = it->first, *hi = it->second;
    return it->second >= a + (unsigned long long)bytes;
}
// A copy of `bytes` at src that `who_copies` makes and the block's
// prefetched ranges must hold (`by`: by when they should have been
// prefetched, or "").
inline void expect_l2_copy(const void* src, int bytes, const char* who_copies, const char* by = "") {
    Block& b = block();
    unsigned long long lo, hi;
    if (prefetched_holds(b, (unsigned long long)src, bytes, &lo, &hi) || quiet()) return;
    const Who who(b.cur);
    fail("%s: %s copies %d bytes at %p that the block did not prefetch into L2%s (the prefetched range nearest below "
         "it: [%p, %p))",
         who.s, who_copies, bytes, src, by, (void*)lo, (void*)hi);
}
// From here until expect_l2_copies(nullptr), every cp.async of the thread
// must read bytes its block prefetched into L2 (`who_copies` names them).
inline void expect_l2_copies(const char* who_copies) { block().f[block().cur].expect_l2 = who_copies; }

// ---- cp.async.{ca,cg}.shared.global [dst], [src], size, bytes
// `size` bytes (4, 8 or 16; cg: 16) from src to dst, both size-aligned; of
// them the bytes past `bytes` (src-size, at most size) are zero-filled. The
// copy lands at the wait_group that covers it; until then dst holds poison.
inline void cp_async(void* dst, const void* src, int size, int bytes, const char* cache) {
    Block& b = block();
    Fiber& f = b.f[b.cur];
    const Who who(b.cur);
    const unsigned long long align = (unsigned long long)size - 1;
    if ((size != 4 && size != 8 && size != 16) || (((unsigned long long)dst | (unsigned long long)src) & align) ||
        bytes < 0 || bytes > size) {
        if (!quiet())
            fail("%s: cp.async.%s of %d bytes (src-size %d) from %p to %p: the size must be 4, 8 or 16, the addresses "
                 "aligned to it, src-size at most the size",
                 who.s, cache, size, bytes, src, dst);
        return;
    }
    if (f.ncopies == kMaxCopies) {
        if (!quiet()) fail("%s has more than %d cp.async copies in flight", who.s, kMaxCopies);
        return;
    }
    if (!access(dst, size, ASYNC_ISSUE)) return;
    Copy& c = f.copies[f.ncopies++];
    c.dst = (unsigned char*)dst;
    c.size = size;
    memset(c.data, 0, 16);  // src-size below size: the rest is zero-filled
    memcpy(c.data, src, (size_t)bytes);
    c.group = f.committed;
    if (f.expect_l2 && bytes > 0) expect_l2_copy(src, bytes, f.expect_l2);
    if (g_checks) memset(dst, 0xff, (size_t)size);  // poison until it lands
}
inline void cp_async16(void* dst, const void* src, int bytes) { cp_async(dst, src, 16, bytes, "cg"); }
// cp.async.bulk.prefetch.L2: a hint with nothing to emulate; its operands
// checked as the device's bulk prefetch requires them, and its range kept
// for expect_prefetched.
inline void prefetch_l2(const void* src, unsigned bytes) {
    Block& b = block();
    if ((bytes == 0 || bytes % 16 || ((unsigned long long)src & 15)) && !quiet()) {
        const Who who(b.cur);
        fail("%s: cp.async.bulk.prefetch.L2 of %u bytes at %p: the size must be a non-zero multiple of 16, the "
             "address 16-byte aligned",
             who.s, bytes, src);
        return;
    }
    // Kept as disjoint ranges: merged with any it overlaps or touches.
    unsigned long long lo = (unsigned long long)src, hi = lo + bytes;
    auto it = b.prefetched.upper_bound(lo);
    if (it != b.prefetched.begin() && std::prev(it)->second >= lo) {
        --it;
        lo = it->first;
        hi = it->second > hi ? it->second : hi;
        it = b.prefetched.erase(it);
    }
    while (it != b.prefetched.end() && it->first <= hi) {
        hi = it->second > hi ? it->second : hi;
        it = b.prefetched.erase(it);
    }
    b.prefetched[lo] = hi;
}
// A copy of the weight ring's stage `stage` that the L2 prefetch before the
// task's waits should have covered.
inline void expect_prefetched(const void* src, int bytes, int stage) {
    char what[48];
    snprintf(what, sizeof what, "the weight ring's stage %d", stage);
    expect_l2_copy(src, bytes, what, " before the task's waits");
}
inline void cp_async_commit() { ++block().f[block().cur].committed; }
// The thread's copies in flight pass to the next task this worker runs: the
// end of the task does not refuse them, and they land at that task's waits.
inline void cp_async_carry() { block().f[block().cur].carry = true; }
// Lands every copy of a group older than the newest n committed ones.
inline void cp_async_wait(int n) {
    Block& b = block();
    Fiber& f = b.f[b.cur];
    int kept = 0;
    for (int i = 0; i < f.ncopies; ++i) {
        Copy& c = f.copies[i];
        if (c.group + (unsigned)n < f.committed) {
            if (access(c.dst, c.size, ASYNC_LAND)) memcpy(c.dst, c.data, (size_t)c.size);
        } else {
            f.copies[kept++] = c;
        }
    }
    f.ncopies = kept;
}

inline void end_of_thread(Block& b, int me) {
    const Fiber& f = b.f[me];
    if (f.ncopies && !f.carry && !quiet()) {
        const Who who(me);
        fail("%s ended the task with %d cp.async copies not waited for (cp.async.wait_group missing)", who.s,
             f.ncopies);
    }
}

// ---- warp collectives
inline unsigned shfl_xor(unsigned v, int lane_mask, unsigned mask) {
    Block& b = block();
    Fiber& f = b.f[b.cur];
    f.op = W_SHFL_XOR;
    f.mask = mask;
    f.in = v;
    f.arg = (unsigned)lane_mask;
    f.state = AT_WARP;
    yield();
    return f.out;
}
inline void syncwarp(unsigned mask) {
    Block& b = block();
    Fiber& f = b.f[b.cur];
    f.op = W_SYNCWARP;
    f.mask = mask;
    f.state = AT_WARP;
    yield();
}

// The PTX ISA's fragments of mma.m16n8k16 with .f16/.bf16 A and B and .f32
// C and D, for a lane with groupID g = lane / 4 and threadID_in_group t =
// lane % 4. Element i of A (8 halves: register i / 2, low half first):
// row g for i in {0,1,4,5}, else g + 8; column 2t + (i & 1), plus 8 for i >= 4.
inline void frag_a(int lane, int i, int* row, int* col) {
    *row = lane / 4 + ((i >> 1) & 1) * 8;
    *col = (lane % 4) * 2 + (i & 1) + (i >= 4 ? 8 : 0);
}
// Element i of B (4 halves): row 2t + (i & 1), plus 8 for i >= 2; column g.
inline void frag_b(int lane, int i, int* row, int* col) {
    *row = (lane % 4) * 2 + (i & 1) + (i >= 2 ? 8 : 0);
    *col = lane / 4;
}
// Element i of C and D (4 floats): row g for i < 2, else g + 8; column 2t + (i & 1).
inline void frag_c(int lane, int i, int* row, int* col) {
    *row = lane / 4 + (i >= 2 ? 8 : 0);
    *col = (lane % 4) * 2 + (i & 1);
}

// d = A x B + d for the warp (mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}).
// Products of f16 or bf16 values are exact in f32; the emulation sums the
// 16 products and C in double and rounds once (the hardware's order of
// accumulation is its own: results agree within f32 rounding).
// This lane's part of a warp-wide mma `op`: its A, B and C fragments go to
// the warp, which executes once every lane has arrived; D comes back in d.
inline void issue_mma(WarpOp op, float* d, const unsigned* a, const unsigned* b) {
    Fiber& f = block().f[block().cur];
    f.op = op;
    f.mask = 0xffffffffu;  // .aligned: every lane of the warp
    for (int i = 0; i < 4; ++i) f.a[i] = a[i], f.c[i] = d[i];
    f.b[0] = b[0];
    f.b[1] = b[1];
    f.state = AT_WARP;
    yield();
    for (int i = 0; i < 4; ++i) d[i] = f.c[i];
}
inline void mma_16816(float* d, const unsigned* a, const unsigned* b, bool bf16, Widen widen) {
    Fiber& f = block().f[block().cur];
    f.bf16 = bf16;
    f.widen = widen;
    issue_mma(W_MMA, d, a, b);
}

// D = A B + C over a warp's 16 x 8 tile, K deep, each sum in double and
// rounded once to f32 into every lane's accumulators (frag_c's layout).
template <int K>
inline void mma_accumulate(Fiber* lanes, const double (*A)[K], const double (*B)[8], const double (*C)[8]) {
    int r, c;
    for (int l = 0; l < kWarp; ++l)
        for (int i = 0; i < 4; ++i) {
            frag_c(l, i, &r, &c);
            double s = C[r][c];
            for (int k = 0; k < K; ++k) s += A[r][k] * B[k][c];
            lanes[l].c[i] = (float)s;
        }
}

inline void execute_mma(Block& bl, int w) {
    Fiber* lanes = bl.f + w * kWarp;
    for (int l = 1; l < kWarp; ++l)
        if (lanes[l].bf16 != lanes[0].bf16 && !quiet()) {
            const Who who(w * kWarp + l);
            fail("%s: mma.sync with %s operands while lane 0 of its warp has %s", who.s, lanes[l].bf16 ? "bf16" : "f16",
                 lanes[0].bf16 ? "bf16" : "f16");
        }
    double A[16][16], B[16][8], C[16][8];
    int r, c;
    for (int l = 0; l < kWarp; ++l) {
        const Fiber& f = lanes[l];
        for (int i = 0; i < 8; ++i) {
            frag_a(l, i, &r, &c);
            A[r][c] = f.widen((unsigned short)(f.a[i / 2] >> (16 * (i % 2))));
        }
        for (int i = 0; i < 4; ++i) {
            frag_b(l, i, &r, &c);
            B[r][c] = f.widen((unsigned short)(f.b[i / 2] >> (16 * (i % 2))));
            frag_c(l, i, &r, &c);
            C[r][c] = f.c[i];
        }
    }
    mma_accumulate<16>(lanes, A, B, C);
}

// ---- TF32: an f32 whose low 13 mantissa bits are zero (10 explicit bits).
inline unsigned float_bits(float x) {
    unsigned u;
    memcpy(&u, &x, 4);
    return u;
}
inline float bits_float(unsigned u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}
// cvt.rna.tf32.f32: x rounded to the nearest tf32, ties away from zero
// (half an ulp added to the magnitude, then truncated: a carry into the
// exponent is the next binade, or infinity past the largest finite). The
// result is a .b32 register with the low 13 bits zero; NaN stays NaN.
inline unsigned cvt_rna_tf32(float x) {
    const unsigned u = float_bits(x);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu)) return (u & 0x80000000u) | 0x7fffe000u;  // NaN
    return (u + 0x1000u) & 0xffffe000u;
}
// mma.sync.m16n8k8 with .tf32 A and B, for lane (g, t) = (lane / 4, lane % 4):
// a[i] is A[g + 8 (i & 1)][t + 4 (i >> 1)], b[i] is B[t + 4 i][g]; C and D
// as m16n8k16's. The tensor core reads a register's upper 19 bits: the
// emulation ignores the low 13 (what cvt.rna.tf32.f32 writes zero).
inline void mma_1688_tf32(float* d, const unsigned* a, const unsigned* b) { issue_mma(W_MMA_TF32, d, a, b); }
// Products of tf32 values are exact in double; the 8 products and C are
// summed in double and rounded once, as mma_16816.
inline void execute_mma_tf32(Block& bl, int w) {
    Fiber* lanes = bl.f + w * kWarp;
    double A[16][8], B[8][8], C[16][8];
    int r, c;
    for (int l = 0; l < kWarp; ++l) {
        const Fiber& f = lanes[l];
        const int g = l / 4, t = l % 4;
        for (int i = 0; i < 4; ++i) A[g + 8 * (i & 1)][t + 4 * (i >> 1)] = bits_float(f.a[i] & 0xffffe000u);
        for (int i = 0; i < 2; ++i) B[t + 4 * i][g] = bits_float(f.b[i] & 0xffffe000u);
        for (int i = 0; i < 4; ++i) {
            frag_c(l, i, &r, &c);
            C[r][c] = f.c[i];
        }
    }
    mma_accumulate<8>(lanes, A, B, C);
}

// ---- ldmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}.shared.b16
// The PTX ISA's ldmatrix: `num` 8x8 matrices of 16-bit elements, each row
// 16 bytes of shared memory at a 16-byte aligned address. The address of
// row r of matrix i comes from lane 8i + r (lanes from 8 * num on give none
// that is used). Lane l receives, for matrix i, one 32-bit register of two
// elements (low half first): half h is the element ldmatrix_frag names.
inline int ldmatrix_addr_lane(int matrix, int row) { return 8 * matrix + row; }
// Without .trans row g = l / 4, columns 2t and 2t + 1 (t = l % 4), as in the
// ISA's figure of an ldmatrix fragment; with .trans the transpose: rows 2t
// and 2t + 1 of column g.
inline void ldmatrix_frag(int lane, int half, bool trans, int* row, int* col) {
    const int g = lane / 4, t = lane % 4;
    *row = trans ? 2 * t + half : g;
    *col = trans ? g : 2 * t + half;
}

inline void ldmatrix(unsigned* r, const void* row_addr, int num, bool trans) {
    Block& b = block();
    Fiber& f = b.f[b.cur];
    f.op = W_LDMATRIX;
    f.mask = 0xffffffffu;  // .aligned: every lane of the warp
    f.row = row_addr;
    f.num = num;
    f.trans = trans;
    f.state = AT_WARP;
    yield();
    for (int i = 0; i < num; ++i) r[i] = f.a[i];
}

// Every lane has arrived: each row is read (checked) as by the lane that
// gave its address, and the elements are dealt out.
inline void execute_ldmatrix(Block& b, int w) {
    Fiber* lanes = b.f + w * kWarp;
    const int num = lanes[0].num;
    const bool trans = lanes[0].trans;
    for (int l = 1; l < kWarp; ++l)
        if ((lanes[l].num != num || lanes[l].trans != trans) && !quiet()) {
            const Who who(w * kWarp + l);
            fail("%s: ldmatrix.x%d%s while lane 0 of its warp runs ldmatrix.x%d%s", who.s, lanes[l].num,
                 lanes[l].trans ? ".trans" : "", num, trans ? ".trans" : "");
        }
    unsigned short m[4][8][8];
    const int cur = b.cur;
    const char* reading = b.reading;
    b.reading = "read (ldmatrix)";
    for (int i = 0; i < num; ++i)
        for (int r = 0; r < 8; ++r) {
            const int src = ldmatrix_addr_lane(i, r);
            const void* p = lanes[src].row;
            b.cur = w * kWarp + src;  // the checks name the lane that gave the address
            bool ok = ((unsigned long long)p & 15) == 0;
            if (!ok && !quiet()) {
                const Who who(b.cur);
                fail("%s: ldmatrix row address %p (row %d of matrix %d) is not 16-byte aligned", who.s, p, r, i);
            }
            ok = ok && access(p, 16, READ);
            if (ok) memcpy(m[i][r], p, 16);
            else memset(m[i][r], 0xff, 16);
        }
    b.cur = cur;
    b.reading = reading;
    int row, col;
    for (int l = 0; l < kWarp; ++l)
        for (int i = 0; i < num; ++i) {
            unsigned v = 0;
            for (int h = 0; h < 2; ++h) {
                ldmatrix_frag(l, h, trans, &row, &col);
                v |= (unsigned)m[i][row][col] << (16 * h);
            }
            lanes[l].a[i] = v;
        }
}

// ---- wgmma (sm_90a): warpgroup MMA on shared-memory operands
// The PTX ISA's wgmma.mma_async.sync.aligned.m64nNk16.f32.{f16,bf16}: the
// 128 threads of a warpgroup (warps 4g..4g+3) compute D = A B + D (or
// D = A B when scale-d is 0), A 64 x 16 and B 16 x N read from shared
// memory through matrix descriptors (B K-major, or N-major with
// imm-trans-b), D in registers. Every instruction of
// the family is .sync.aligned: all 128 threads execute it together, here a
// rendezvous like a warp collective's. The product is computed at issue
// from the bytes read there (through the checks), but a thread sees it only
// at the wgmma.wait_group that covers its commit group: from the issue on
// its accumulators hold kWgmmaPoison, and the operand bytes are read again
// at the wait and must not have changed (the hardware reads them somewhere
// in between).
const unsigned kWgmmaPoison = 0x7fc0dead;  // a quiet NaN: an early read spoils the result

inline const char* group_op_name(GroupOp op) {
    return op == G_FENCE    ? "wgmma.fence"
           : op == G_MMA    ? "wgmma.mma_async"
           : op == G_COMMIT ? "wgmma.commit_group"
                            : "wgmma.wait_group";
}

// A pointer into the block's shared memory as a .shared address (the
// window's offset; the hardware's window is 2^18 bytes, a descriptor's
// address field holds 18 bits).
inline unsigned shared_address(const void* p) {
    const long off = (const unsigned char*)p - block().window;
    if ((off < 0 || off >= (1L << 18)) && !quiet()) {
        const Who who(block().cur);
        fail("%s: %p is not a shared-memory address a matrix descriptor can hold", who.s, p);
    }
    return (unsigned)off;
}

// A descriptor holds its address and offsets >> 4: each must be a 16-byte
// multiple below 2^18, or the hardware reads elsewhere than meant.
inline void check_descriptor(const void* start, unsigned lbo, unsigned sbo) {
    const unsigned a = shared_address(start);
    if (((a | lbo | sbo) & 15u || lbo >= (1u << 18) || sbo >= (1u << 18)) && !quiet()) {
        const Who who(block().cur);
        fail("%s: matrix descriptor with start address %u (byte %p), leading byte offset %u, stride byte offset %u: "
             "each must be a multiple of 16 below 2^18",
             who.s, a, start, lbo, sbo);
    }
}

// The 128-byte swizzled layout (anvil_wgmma_desc_sw128): the hardware adds
// a row's offset to the start and swizzles the sum's bits 4-6 with its
// bits 7-9, so the start must lie in the first 128-byte row of a 1024-byte
// atom or the rows' swizzle would not be the one a TMA box wrote.
inline void check_descriptor_sw128(const void* start, unsigned sbo, unsigned lbo) {
    const unsigned a = shared_address(start);
    if (((a | sbo | lbo) & 15u || (a & 1023u) >= 128u || sbo >= (1u << 18) || lbo >= (1u << 18)) && !quiet()) {
        const Who who(block().cur);
        fail("%s: 128-byte swizzled matrix descriptor with start address %u (byte %p), byte offsets %u (stride) "
             "and %u (leading): the start must be a multiple of 16 within the first 128 bytes of a 1024-byte atom, "
             "the offsets multiples of 16 below 2^18",
             who.s, a, start, sbo, lbo);
    }
}

// The descriptor's fields as the hardware reads them: the start address,
// the leading (K) and stride (M or N) byte offsets between core matrices,
// each stored >> 4 in 14 bits; the matrix base offset (bits 49-51) and the
// swizzle mode (bits 62-63: 0 none, 1 128B, 2 64B, 3 32B).
struct Descriptor {
    unsigned start, lbo, sbo, base, swizzle;
};
inline Descriptor decode_descriptor(unsigned long long d) {
    Descriptor r;
    r.start = (unsigned)(d & 0x3fff) << 4;
    r.lbo = (unsigned)(d >> 16 & 0x3fff) << 4;
    r.sbo = (unsigned)(d >> 32 & 0x3fff) << 4;
    r.base = (unsigned)(d >> 49 & 7);
    r.swizzle = (unsigned)(d >> 62 & 3);
    return r;
}
// Without swizzling an operand is a grid of core matrices of 128
// contiguous bytes, 8 rows of 16 (8 16-bit values), and the two offsets
// step between them. K-major (imm-trans 0; canonical layout
// ((8,m),(T,2k)):((1T,SBO),(1,LBO)) in 16-bit elements, T = 8): a core
// row holds 8 k values of one row r, element (r, k) of a k16 step lies at
// start + (r / 8) sbo + (k / 8) lbo + (r % 8) 16 + (k % 8) 2: lbo steps
// along K, sbo along M or N.
inline unsigned core_row_address(const Descriptor& d, int r, int khalf) {
    return d.start + (unsigned)(r / 8) * d.sbo + (unsigned)khalf * d.lbo + (unsigned)(r % 8) * 16;
}
// The 128-byte swizzle: the 16-byte chunk (address bits 4-6) moves by the
// 128-byte row within its 1024-byte atom (bits 7-9), in TMA boxes and
// wgmma operands alike.
inline unsigned swizzle_128b(unsigned a) { return a ^ ((a >> 7 & 7u) << 4); }
// MN-major (imm-trans 1, the "interleave" canonical layout
// ((T,1,m),(8,k)):((1,T,SBO),(1T,LBO))): a core row holds 8 consecutive
// rows r (M or N) at one k, element (r, k) lies at
// start + (r / 8) sbo + (k / 8) lbo + (k % 8) 16 + (r % 8) 2: the offsets
// keep their axes (lbo along K, sbo along M or N), the rows inside a core
// matrix turn from r to k.
// With the 128-byte swizzle (((T,8,m),(8,k)):((1,T,LBO),(8T,SBO))) the
// atom is 8 rows of 128 bytes, a row 64 consecutive r at one k: element
// (r, k) lies at start + (r / 64) lbo + (k / 8) sbo + (k % 8) 128 +
// (r % 64) 2, swizzled: the offsets trade axes (lbo along M or N between
// atoms, sbo along K).
inline unsigned mn_core_row_address(const Descriptor& d, int rgroup, int k) {
    if (d.swizzle == 1)
        return swizzle_128b(d.start + (unsigned)(rgroup / 8) * d.lbo + (unsigned)(k / 8) * d.sbo +
                            (unsigned)(k % 8) * 128 + (unsigned)(rgroup % 8) * 16);
    return d.start + (unsigned)rgroup * d.sbo + (unsigned)(k / 8) * d.lbo + (unsigned)(k % 8) * 16;
}
// With the swizzle a K-major operand's rows are 128 bytes of k: element
// (r, k) of a k16 step lies at start + (r / 8) sbo + (r % 8) 128 + k 2,
// swizzled.
inline unsigned operand_row_address(const Descriptor& d, int r, int khalf) {
    if (d.swizzle == 0) return core_row_address(d, r, khalf);
    return swizzle_128b(d.start + (unsigned)(r / 8) * d.sbo + (unsigned)(r % 8) * 128 + (unsigned)khalf * 16);
}
// Accumulator element i of warpgroup thread t (m64nNk16, f32 D): warp
// w = t / 32 owns rows 16w..16w+15; lane (g, q) = (l / 4, l % 4) holds, of
// each 8-column block j = i / 4, rows g and g + 8 (bit 1 of i), columns
// 8j + 2q and 8j + 2q + 1 (bit 0 of i): mma.m16n8's C fragment per block.
inline void wgmma_frag(int t, int i, int* row, int* col) {
    const int w = t / kWarp, l = t % kWarp;
    *row = 16 * w + l / 4 + 8 * ((i >> 1) & 1);
    *col = 8 * (i / 4) + 2 * (l % 4) + (i & 1);
}

// This thread's part of warpgroup collective `op`.
inline void group_op(GroupOp op) {
    Block& b = block();
    Fiber& f = b.f[b.cur];
    f.gop = op;
    f.state = AT_WARPGROUP;
    yield();
}
inline void wgmma_fence() { group_op(G_FENCE); }
inline void wgmma_commit() { group_op(G_COMMIT); }
inline void wgmma_wait(int n) {
    block().f[block().cur].wait_n = n;
    group_op(G_WAIT);
}
inline void wgmma(float* d, unsigned long long da, unsigned long long db, int n, bool bf16, bool accumulate, bool mn_b,
                  Widen widen) {
    Fiber& f = block().f[block().cur];
    f.mn_b = mn_b;
    f.acc = d;
    f.da = da;
    f.db = db;
    f.n = n;
    f.bf16 = bf16;
    f.widen = widen;
    f.accumulate = accumulate;
    group_op(G_MMA);
}
// A thread about to read its accumulators: no wgmma on them may be in flight.
inline void wgmma_ready(const float* d) {
    Block& b = block();
    const Warpgroup& g = b.wg[b.cur / kWarpgroup];
    for (const Wgmma& w : g.inflight)
        if (w.acc[b.cur % kWarpgroup] == d && !quiet()) {
            const Who who(b.cur);
            fail("%s reads its wgmma accumulators before the wgmma.wait_group that covers the wgmma.mma_async "
                 "writing them",
                 who.s);
            return;
        }
}

// Reads rows 0..R-1 of a k16 step of an operand, K-major or (mn)
// MN-major, into v[r][k] (checked, as by `reader`); false when the
// descriptor is not one the emulation knows.
inline bool read_operand(Block& b, int reader, unsigned long long desc, int R, unsigned short (*v)[16], bool mn,
                         bool check, const char* which) {
    const Descriptor d = decode_descriptor(desc);
    if (d.swizzle > 1u || d.base != 0) {
        if (!quiet()) {
            const Who who(reader);
            fail("%s: wgmma.mma_async %s descriptor with swizzle mode %u and base offset %u: only the unswizzled "
                 "canonical layouts and the 128-byte swizzle (modes 0 and 1, base offset 0) are emulated",
                 who.s, which, d.swizzle, d.base);
        }
        return false;
    }
    // Core row i (16 bytes): R x 2 of them K-major, R / 8 x 16 MN-major.
    for (int i = 0; i < R * 2; ++i) {
        const int r = mn ? i / 16 : i / 2, k = mn ? i % 16 : i % 2;
        const unsigned at = mn ? mn_core_row_address(d, r, k) : operand_row_address(d, r, k);
        unsigned char* p = b.window + at;
        if (check) {
            if (at + 16 > kWindow) return false;
            const int cur = b.cur;
            b.cur = reader;
            const bool ok = access(p, 16, READ);
            b.cur = cur;
            if (!ok) return false;
        }
        unsigned short row[8];
        memcpy(row, p, 16);
        for (int j = 0; j < 8; ++j) {
            if (mn)
                v[8 * r + j][k] = row[j];
            else
                v[r][8 * k + j] = row[j];
        }
    }
    return true;
}

inline void execute_wgmma(Block& b, int g) {
    Fiber* th = b.f + g * kWarpgroup;
    Warpgroup& wg = b.wg[g];
    const Fiber& f0 = th[0];
    for (int t = 1; t < kWarpgroup; ++t) {
        const Fiber& f = th[t];
        if ((f.da != f0.da || f.db != f0.db || f.n != f0.n || f.bf16 != f0.bf16 || f.accumulate != f0.accumulate ||
             f.mn_b != f0.mn_b) &&
            !quiet()) {
            const Who who(g * kWarpgroup + t), first(g * kWarpgroup);
            fail("%s: wgmma.mma_async with descriptors, shape, type, scale-d or imm-trans-b other than %s's, the first "
                 "of its warpgroup's",
                 who.s, first.s);
            return;
        }
    }
    if (!wg.fenced && !quiet()) {
        const Who who(g * kWarpgroup);
        fail("%s: wgmma.mma_async without a wgmma.fence since the warpgroup's registers were last its own (the "
             "task's start or a wgmma.wait_group)",
             who.s);
        return;
    }
    const int n = f0.n;
    if ((n < 8 || n > 256 || n % 8) && !quiet()) {
        fail("wgmma.mma_async.m64n%dk16: N must be a multiple of 8 from 8 to 256", n);
        return;
    }
    wg.inflight.emplace_back();
    Wgmma& w = wg.inflight.back();
    w.group = wg.committed;
    w.n = n;
    w.mn_b = f0.mn_b;
    w.da = f0.da;
    w.db = f0.db;
    const char* reading = b.reading;
    b.reading = "read (wgmma.mma_async)";
    b.async_proxy_reading = true;
    const bool ok = read_operand(b, g * kWarpgroup, w.da, 64, w.a, false, true, "A") &&
                    read_operand(b, g * kWarpgroup, w.db, n, w.b, w.mn_b, true, "B");
    b.async_proxy_reading = false;
    b.reading = reading;
    double A[64][16], B[256][16];
    for (int r = 0; r < 64; ++r)
        for (int k = 0; k < 16; ++k) A[r][k] = ok ? f0.widen(w.a[r][k]) : 0.0;
    for (int c = 0; c < n; ++c)
        for (int k = 0; k < 16; ++k) B[c][k] = ok ? f0.widen(w.b[c][k]) : 0.0;
    for (int t = 0; t < kWarpgroup; ++t) {
        float* acc = th[t].acc;
        w.acc[t] = acc;
        const Wgmma* prior = nullptr;  // an earlier wgmma in flight on the same registers: its D is this C
        for (size_t i = 0; i + 1 < wg.inflight.size(); ++i)
            if (wg.inflight[i].acc[t] == acc) prior = &wg.inflight[i];
        int row, col;
        for (int i = 0; i < n / 2; ++i) {
            wgmma_frag(t, i, &row, &col);
            double s = !f0.accumulate ? 0.0 : prior ? prior->result[t][i] : acc[i];
            for (int k = 0; k < 16; ++k) s += A[row][k] * B[col][k];
            w.result[t][i] = (float)s;
        }
        for (int i = 0; i < n / 2; ++i) memcpy(acc + i, &kWgmmaPoison, 4);
    }
}

// wgmma.wait_group n: the warpgroup's wgmma of every commit group but the
// newest n complete; their results reach the registers.
inline void execute_wgmma_wait(Block& b, int g) {
    Fiber* th = b.f + g * kWarpgroup;
    Warpgroup& wg = b.wg[g];
    const int n = th[0].wait_n;
    for (int t = 1; t < kWarpgroup; ++t)
        if (th[t].wait_n != n && !quiet()) {
            const Who who(g * kWarpgroup + t);
            fail("%s: wgmma.wait_group %d while the first thread of its warpgroup waits for %d", who.s, th[t].wait_n, n);
            return;
        }
    size_t done = 0;
    while (done < wg.inflight.size() && wg.inflight[done].group + (unsigned)n < wg.committed) ++done;
    for (size_t i = 0; i < done; ++i) {
        Wgmma& w = wg.inflight[i];
        unsigned short a[64][16], bb[256][16];
        const bool same = read_operand(b, g * kWarpgroup, w.da, 64, a, false, false, "A") &&
                          read_operand(b, g * kWarpgroup, w.db, w.n, bb, w.mn_b, false, "B") &&
                          memcmp(a, w.a, sizeof a) == 0 && memcmp(bb, w.b, sizeof(bb[0]) * (size_t)w.n) == 0;
        if (!same && !quiet()) {
            const Who who(g * kWarpgroup);
            fail("%s: the shared memory a wgmma.mma_async of its warpgroup reads changed before the "
                 "wgmma.wait_group that covers it",
                 who.s);
        }
        for (int t = 0; t < kWarpgroup; ++t) {
            // A later wgmma on these registers (completing now too, or still in
            // flight): its D, computed from this one's, is what they will hold.
            bool later = false;
            for (size_t j = i + 1; j < wg.inflight.size(); ++j) later = later || wg.inflight[j].acc[t] == w.acc[t];
            for (int e = 0; e < w.n / 2 && !quiet(); ++e)
                if (memcmp(w.acc[t] + e, &kWgmmaPoison, 4) != 0) {
                    const Who who(g * kWarpgroup + t);
                    fail("%s wrote accumulator %d of a wgmma.mma_async in flight before its wgmma.wait_group", who.s,
                         e);
                }
            if (!later) memcpy(w.acc[t], w.result[t], sizeof(float) * (size_t)(w.n / 2));
        }
    }
    wg.inflight.erase(wg.inflight.begin(), wg.inflight.begin() + (long)done);
    wg.fenced = false;  // the registers are the threads' again: the next wgmma needs a fence
}

// Completes the warpgroup collectives all 128 threads of a warpgroup
// reached; a warpgroup thread that ended the task is reported.
inline bool resolve_warpgroups(Block& b) {
    bool progressed = false;
    for (int g = 0; g < kWarpgroups; ++g) {
        Fiber* th = b.f + g * kWarpgroup;
        int at = 0, exited = -1;
        GroupOp op = G_FENCE;
        for (int t = 0; t < kWarpgroup; ++t) {
            if (th[t].state == AT_WARPGROUP && (at == 0 || th[t].gop == op)) op = th[t].gop, ++at;
            if (th[t].state == EXITED) exited = t;
        }
        if (at == 0) continue;
        if (exited >= 0 && !quiet()) {
            const Who who(g * kWarpgroup + exited);
            fail("%s had ended the task while its warpgroup waits at %s (a .sync.aligned warpgroup instruction)", who.s,
                 group_op_name(op));
            b.abandoned = true;
            return false;
        }
        if (at < kWarpgroup) continue;
        if (op == G_FENCE) b.wg[g].fenced = true;
        if (op == G_COMMIT) ++b.wg[g].committed;
        if (op == G_MMA) execute_wgmma(b, g);
        if (op == G_WAIT) execute_wgmma_wait(b, g);
        for (int t = 0; t < kWarpgroup; ++t) th[t].state = RUNNABLE;
        progressed = true;
    }
    return progressed;
}

// ---- mbarrier and cp.async.bulk (the TMA engine's 1-D copies)
// An mbarrier's phase completes when its pending arrivals and its
// transaction count (bytes announced by arrive.expect_tx less bytes its
// bulk copies completed) are both zero; its bulk copies land then, and the
// next phase begins with the init count. try_wait.parity p is true once
// the phase of parity p has completed (the current phase's parity is not p).
inline Mbar* find_mbar(const void* bar, const char* what) {
    Block& b = block();
    for (Mbar& m : b.mbars)
        if (m.at == bar) return &m;
    if (!quiet()) {
        const Who who(b.cur);
        fail("%s: %s on %p, which no mbarrier.init of this task initialised", who.s, what, bar);
    }
    return nullptr;
}
inline void mbarrier_init(void* bar, int count) {
    Block& b = block();
    if ((((unsigned long long)bar & 7) || count < 1) && !quiet()) {
        const Who who(b.cur);
        fail("%s: mbarrier.init at %p with count %d: the object must be 8-byte aligned, the count at least 1", who.s, bar,
             count);
        return;
    }
    if (!access(bar, 8, WRITE)) return;
    memset(bar, 0, 8);
    for (size_t i = 0; i < b.mbars.size(); ++i)
        if (b.mbars[i].at == bar) b.mbars.erase(b.mbars.begin() + (long)i);
    Mbar m;
    m.at = bar;
    m.count = m.pending = count;
    m.tx = 0;
    m.phase = 0;
    m.landed[0] = m.landed[1] = 0;
    b.mbars.push_back(m);
}
inline void mbarrier_try_complete(Mbar& m) {
    if (m.pending != 0 || m.tx != 0) return;
    Block& b = block();
    unsigned landing = 0;
    if (!m.copies.empty()) {
        b.landings.push_back(Landing());
        landing = b.landing_now = (unsigned)b.landings.size();
    }
    for (BulkCopy& c : m.copies)
        if (access(c.dst, (int)c.data.size(), BULK_LAND)) memcpy(c.dst, c.data.data(), c.data.size());
    b.landing_now = 0;
    m.landed[m.phase & 1u] = landing;
    m.copies.clear();
    m.phase ^= 1u;
    m.pending = m.count;
}
inline void mbarrier_arrive_expect_tx(void* bar, unsigned tx) {
    Mbar* m = find_mbar(bar, "mbarrier.arrive");
    if (!m) return;
    m->tx += tx;
    --m->pending;
    mbarrier_try_complete(*m);
}
inline bool mbarrier_try_wait_parity(void* bar, unsigned parity) {
    Block& b = block();
    Fiber& f = b.f[b.cur];
    Mbar* m = find_mbar(bar, "mbarrier.try_wait.parity");
    if (!m || (m->phase & 1u) != (parity & 1u)) {
        f.spins = 0;
        if (m && m->landed[parity & 1u]) {  // this thread may read what the phase landed
            Landing& l = b.landings[m->landed[parity & 1u] - 1];
            l.seen.set((size_t)b.cur);
            if (!l.seen_iv) l.seen_iv = b.iv;
        }
        return true;
    }
    if (++f.spins > (1 << 16) && !quiet()) {  // every other thread ran that often meanwhile
        const Who who(b.cur);
        fail("%s waits on an mbarrier whose phase of parity %u never completes (arrivals or bulk-copy bytes missing)",
             who.s, parity & 1u);
    }
    yield();  // the block's other threads run (the arrivals and copies this one waits for)
    return quiet();  // after a failure nothing waits
}
// fence.proxy.async: this thread's writes so far reach the async proxy.
inline void fence_proxy_async() { ++block().f[block().cur].proxy_fences; }

// mbarrier.inval: the object's 8 bytes are plain shared memory again (the
// next task's scratch); its copies must have landed, and later use of it
// is an error as before its init.
inline void mbarrier_inval(void* bar) {
    Block& b = block();
    Mbar* m = find_mbar(bar, "mbarrier.inval");
    if (!m) return;
    if (!m->copies.empty() && !quiet()) {
        const Who who(b.cur);
        fail("%s: mbarrier.inval at %p with bulk copies still to land on it", who.s, bar);
        return;
    }
    b.mbars.erase(b.mbars.begin() + (m - b.mbars.data()));
}
// cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes: `bytes`
// (a non-zero multiple of 16) from global src to shared dst, both 16-byte
// aligned; completes `bytes` of bar's transaction count. Until bar's phase
// completes dst holds poison, and reading or writing it is an error.
inline void bulk_copy(void* dst, const void* src, unsigned bytes, void* bar) {
    Block& b = block();
    if ((bytes == 0 || bytes % 16 || ((unsigned long long)dst & 15) || ((unsigned long long)src & 15)) && !quiet()) {
        const Who who(b.cur);
        fail("%s: cp.async.bulk of %u bytes from %p to %p: the size must be a non-zero multiple of 16, both addresses "
             "16-byte aligned",
             who.s, bytes, src, dst);
        return;
    }
    Mbar* m = find_mbar(bar, "cp.async.bulk");
    if (!m || !access(dst, (int)bytes, BULK_ISSUE)) return;
    BulkCopy c;
    c.dst = (unsigned char*)dst;
    c.data.assign((const unsigned char*)src, (const unsigned char*)src + bytes);
    c.tid = b.cur;
    if (g_checks) memset(dst, 0xff, bytes);
    m->copies.push_back(c);
    m->tx -= bytes;
    mbarrier_try_complete(*m);
}

// cp.async.bulk.tensor.2d ... .tile.mbarrier::complete_tx::bytes: the box
// of `map` at tensor element (x, y) into shared dst, built at issue from
// the tensor (zero outside it; swizzled as the map says) and landing, like
// a bulk copy, when bar's phase completes; completes the whole box's bytes
// of bar's transaction count, zero-filled ones included. The map must be
// one the host filled (src/runtime/tensor_map.cpp checks its shape), and
// this thread must have acquired it in the task (tma_acquire_map); dst
// 128-byte aligned, 1024 with the swizzle (whose rows bits 7-9 select).
inline bool map_acquired(const Fiber& f, const void* map) {
    for (int i = 0; i < f.nmaps; ++i)
        if (f.maps[i] == map) return true;
    return false;
}
// fence.proxy.tensormap::generic.acquire: from here on this thread's TMA
// copies may read `map` (until the task ends).
inline void tma_acquire_map(const AnvilTensorMap* map) {
    Block& b = block();
    Fiber& f = b.f[b.cur];
    if (map_acquired(f, map)) return;
    if (f.nmaps == kMaxMaps && !quiet()) {
        const Who who(b.cur);
        fail("%s acquires more than %d tensor maps in one task", who.s, kMaxMaps);
        return;
    }
    f.maps[f.nmaps++] = map;
}
inline void tma_load_2d(void* dst, const AnvilTensorMap* map, int x, int y, void* bar) {
    Block& b = block();
    if (((unsigned long long)map & 63) || map->simt.magic != ANVIL_TMA_MAGIC) {
        if (!quiet()) {
            const Who who(b.cur);
            fail("%s: cp.async.bulk.tensor with the tensor map at %p, which is not 64-byte aligned or no map the host "
                 "encoded",
                 who.s, (const void*)map);
        }
        return;
    }
    if (!map_acquired(b.f[b.cur], map) && !quiet()) {
        const Who who(b.cur);
        fail("%s: cp.async.bulk.tensor with the tensor map at %p, which this thread has not acquired in this task "
             "(anvil_tma_acquire_map: the engine may read a stale map, as the H200 did with CUDA_ERROR_ILLEGAL_INSTRUCTION)",
             who.s, (const void*)map);
        return;
    }
    const auto& m = map->simt;
    const unsigned align = m.swizzle == ANVIL_TMA_SWIZZLE_128B ? 1024u : 128u;
    if ((shared_address(dst) % align) && !quiet()) {
        const Who who(b.cur);
        fail("%s: cp.async.bulk.tensor into shared address %u: a %s box must start %u-byte aligned", who.s,
             shared_address(dst), m.swizzle == ANVIL_TMA_SWIZZLE_128B ? "128-byte swizzled" : "tensor", align);
        return;
    }
    Mbar* mb = find_mbar(bar, "cp.async.bulk.tensor");
    const unsigned row = m.box_cols * m.elem_bytes, bytes = row * m.box_rows;
    if (!mb || !access(dst, (int)bytes, BULK_ISSUE)) return;
    BulkCopy c;
    c.dst = (unsigned char*)dst;
    c.data.assign(bytes, 0);
    for (unsigned r = 0; r < m.box_rows; ++r) {
        const long long gy = (long long)y + r;
        for (unsigned e = 0; e < m.box_cols; ++e) {
            const long long gx = (long long)x + e;
            if (gy < 0 || gy >= m.rows || gx < 0 || gx >= m.cols) continue;
            const unsigned at = r * row + e * m.elem_bytes;
            const unsigned to = m.swizzle == ANVIL_TMA_SWIZZLE_128B ? swizzle_128b(at) : at;
            memcpy(&c.data[to], (const unsigned char*)m.base + gy * (long long)m.row_bytes + gx * m.elem_bytes,
                   m.elem_bytes);
        }
    }
    c.tid = b.cur;
    if (g_checks) memset(dst, 0xff, bytes);
    mb->copies.push_back(c);
    mb->tx -= bytes;
    mbarrier_try_complete(*mb);
}

// After every thread ended the task: nothing asynchronous may be left.
inline void end_of_task(Block& b) {
    if (quiet()) return;
    for (int g = 0; g < kWarpgroups; ++g)
        if (!b.wg[g].inflight.empty()) {
            fail("warpgroup %d ended the task with %d wgmma.mma_async in flight (wgmma.wait_group missing)", g,
                 (int)b.wg[g].inflight.size());
            return;
        }
    for (const Mbar& m : b.mbars)
        if (!m.copies.empty()) {
            const Who who(m.copies[0].tid);
            fail("%s's cp.async.bulk never landed: the task ended before its mbarrier's phase completed", who.s);
            return;
        }
}

inline void execute_warp(Block& b, int w, unsigned mask) {
    Fiber* lanes = b.f + w * kWarp;
    int first = 0;
    while (!(mask >> first & 1u)) ++first;
    const WarpOp op = lanes[first].op;
    if (op == W_MMA) execute_mma(b, w);
    if (op == W_MMA_TF32) execute_mma_tf32(b, w);
    if (op == W_LDMATRIX) execute_ldmatrix(b, w);
    if (op == W_SHFL_XOR)
        for (int l = 0; l < kWarp; ++l) {
            if (!(mask >> l & 1u)) continue;
            const int src = l ^ (int)(lanes[l].arg & 31u);
            if (!(mask >> src & 1u) && !quiet()) {
                const Who who(w * kWarp + l);
                fail("%s: shfl.sync.bfly reads lane %d, outside its mask 0x%08x", who.s, src, mask);
            }
            lanes[l].out = lanes[src].in;
        }
    for (int l = 0; l < kWarp; ++l)
        if (mask >> l & 1u) lanes[l].state = RUNNABLE;
}

}  // namespace anvil_simt

// The library's side of the simt backend (src/runtime/simt_backend.cpp):
// the checks on or off and a fresh report for a run, then its first failure.
extern "C" void anvil_simt_configure(int checks) {
    std::lock_guard<std::mutex> lock(anvil_simt::g_report.mu);
    anvil_simt::g_checks = checks;
    anvil_simt::g_report.failed = false;
    anvil_simt::g_report.task = -1;
    anvil_simt::g_report.msg[0] = 0;
}
// The failure's message into buf; returns its task, -1 when nothing failed.
extern "C" int anvil_simt_report(char* buf, int cap) {
    std::lock_guard<std::mutex> lock(anvil_simt::g_report.mu);
    if (!anvil_simt::g_report.failed) return -1;
    snprintf(buf, (size_t)cap, "%s", anvil_simt::g_report.msg);
    return anvil_simt::g_report.task < 0 ? 0 : anvil_simt::g_report.task;
}

#endif  // ANVIL_SIMT
#endif  // ANVIL_RTASKS_SIMT_CUH
