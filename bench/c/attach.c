/* C reference of attach + detach: shmat + shmdt of one segment, N times; and of a notify that
 * finds no waiter (full fence + load of the waiter count). Prints two numbers: ns per
 * attach+detach, ns per notify. */
#include "common.h"

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  long n = atol(argv[1]), m = atol(argv[2]);
  int id = shmget(IPC_PRIVATE, 65536, IPC_CREAT | 0600);
  if (id < 0) { perror("shmget"); return 1; }
  double t0 = now();
  for (long i = 0; i < n; i++) {
    void *p = shmat(id, NULL, 0);
    if (p == (void *)-1) { perror("shmat"); return 1; }
    shmdt(p);
  }
  double attach = (now() - t0) / n * 1e9;
  volatile uint32_t *cell = shmat(id, NULL, 0);
  long woke = 0;
  t0 = now();
  for (long i = 0; i < m; i++) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (__atomic_load_n(&cell[1], __ATOMIC_RELAXED)) woke += futex_wake((uint32_t *)cell, 1);
  }
  double notify = (now() - t0) / m * 1e9;
  shmdt((void *)cell);
  shmctl(id, IPC_RMID, NULL);
  printf("%.1f %.2f %ld\n", attach, notify, woke);
  return 0;
}
