/* Shared bits of the C references of the benchmark. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <linux/futex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

static inline long futex_wait(uint32_t *w, uint32_t v) {
  return syscall(SYS_futex, w, FUTEX_WAIT, v, NULL, NULL, 0);
}
static inline long futex_wake(uint32_t *w, int n) {
  return syscall(SYS_futex, w, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* Waits until *word == want: spins for `spin_us` microseconds (as the Channel's default
 * spin-then-park does), then sleeps with the waiting-flag protocol of the sysv-shm Channel (set flag,
 * fence, re-check, FUTEX_WAIT on the flag). */
static inline void await_value(uint32_t *word, uint32_t want, uint32_t *flag, double spin_us) {
  double end = 0;
  for (long i = 0;; i++) {
    if (__atomic_load_n(word, __ATOMIC_ACQUIRE) == want) return;
    relax();
    if ((i & 63) == 0) {
      double t = now();
      if (end == 0) end = t + spin_us / 1e6;
      else if (t >= end) break;
    }
  }
  for (;;) {
    __atomic_store_n(flag, 1, __ATOMIC_SEQ_CST);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (__atomic_load_n(word, __ATOMIC_ACQUIRE) == want) {
      __atomic_store_n(flag, 0, __ATOMIC_RELAXED);
      return;
    }
    futex_wait(flag, 1);
  }
}

/* Publishes *word = v and wakes the other side if its flag says it sleeps. */
static inline void publish(uint32_t *word, uint32_t v, uint32_t *flag) {
  __atomic_store_n(word, v, __ATOMIC_RELEASE);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  if (__atomic_load_n(flag, __ATOMIC_RELAXED) && __atomic_exchange_n(flag, 0, __ATOMIC_SEQ_CST))
    futex_wake(flag, 1);
}

__attribute__((unused)) static void *shm_new(size_t size, int *id_out) {
  int id = shmget(IPC_PRIVATE, size, IPC_CREAT | 0600);
  if (id < 0) { perror("shmget"); exit(1); }
  void *p = shmat(id, NULL, 0);
  if (p == (void *)-1) { perror("shmat"); exit(1); }
  shmctl(id, IPC_RMID, NULL); /* freed when both processes detach */
  if (id_out) *id_out = id;
  return p;
}

/* Pins the calling process to CPU `cpu` (sched_setaffinity); a negative cpu leaves it alone. */
__attribute__((unused)) static void pin(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) { perror("sched_setaffinity"); exit(1); }
}
