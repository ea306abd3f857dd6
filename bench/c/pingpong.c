/* C references of the ping-pong round trip between two processes (fork) over SysV shared memory.
 *   pingpong futex N WARMUP   the wait cell protocol of sysv-shm (value + waiter count, FUTEX_WAIT/WAKE), no spinning
 *   pingpong spin  N WARMUP   busy-wait on atomic loads
 * Optional CPU_PING CPU_PONG after WARMUP: where each process runs (sched_setaffinity; -1: anywhere).
 * Prints nanoseconds per round trip. */
#include "common.h"

static inline void cell_wait_for(int32_t *cell, int32_t want) {
  uint32_t *count = (uint32_t *)(cell + 1);
  for (;;) {
    int32_t v = __atomic_load_n(cell, __ATOMIC_SEQ_CST);
    if (v == want) return;
    __atomic_fetch_add(count, 1, __ATOMIC_SEQ_CST);
    futex_wait((uint32_t *)cell, (uint32_t)v);
    __atomic_fetch_sub(count, 1, __ATOMIC_SEQ_CST);
  }
}
static inline void cell_set_notify(int32_t *cell, int32_t v) {
  __atomic_store_n(cell, v, __ATOMIC_SEQ_CST);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  if (__atomic_load_n((uint32_t *)(cell + 1), __ATOMIC_RELAXED)) futex_wake((uint32_t *)cell, 1);
}
static inline void spin_for(int32_t *cell, int32_t want) {
  while (__atomic_load_n(cell, __ATOMIC_ACQUIRE) != want) relax();
}

int main(int argc, char **argv) {
  if (argc < 4) return 2;
  int futex = strcmp(argv[1], "futex") == 0;
  long n = atol(argv[2]), warm = atol(argv[3]);
  int cpu_ping = argc > 4 ? atoi(argv[4]) : -1, cpu_pong = argc > 5 ? atoi(argv[5]) : -1;
  char *base = shm_new(4096, NULL);
  int32_t *ping = (int32_t *)base, *pong = (int32_t *)(base + 128);
  pid_t pid = fork();
  if (pid == 0) {
    pin(cpu_pong);
    for (int32_t i = 1; i <= n + warm; i++) {
      if (futex) { cell_wait_for(ping, i); cell_set_notify(pong, i); }
      else { spin_for(ping, i); __atomic_store_n(pong, i, __ATOMIC_RELEASE); }
    }
    _exit(0);
  }
  pin(cpu_ping);
  double t0 = 0;
  for (int32_t i = 1; i <= n + warm; i++) {
    if (i == warm + 1) t0 = now();
    if (futex) { cell_set_notify(ping, i); cell_wait_for(pong, i); }
    else { __atomic_store_n(ping, i, __ATOMIC_RELEASE); spin_for(pong, i); }
  }
  double dt = now() - t0;
  waitpid(pid, NULL, 0);
  printf("%.1f\n", dt / n * 1e9);
  return 0;
}
