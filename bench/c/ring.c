/* C reference of the message rate: a minimal single-producer single-consumer ring of fixed
 * 64-byte records in SysV shared memory between two processes (fork): u64 head and tail on cache
 * lines of their own, one release store of the head per message, memcpy in and out, spinning when
 * empty or full. The same ring as the plain-JavaScript reference of bench/peer.mjs: the machine's
 * limit for 64-byte messages, without any checks or wake-ups.
 *
 *   ring COUNT WARMUP CPU_SEND CPU_RECV      (CPU -1: anywhere)
 * Prints the receiver's messages per second. */
#include "common.h"

#define SLOTS 1024
#define REC 64
int main(int argc, char **argv) {
  if (argc < 5) return 2;
  long count = atol(argv[1]), warm = atol(argv[2]);
  int cpu_send = atoi(argv[3]), cpu_recv = atoi(argv[4]);
  char *base = shm_new(128 + SLOTS * REC, NULL);
  uint64_t *head = (uint64_t *)base, *tail = (uint64_t *)(base + 64);
  char *slots = base + 128;
  pid_t pid = fork();
  if (pid == 0) { /* sender */
    pin(cpu_send);
    char msg[REC];
    memset(msg, 7, REC);
    uint64_t h = 0, t = 0;
    for (long i = 0; i < count; i++) {
      while (h - t == SLOTS) { t = __atomic_load_n(tail, __ATOMIC_ACQUIRE); if (h - t == SLOTS) relax(); }
      memcpy(msg, &i, 8);
      memcpy(slots + (h % SLOTS) * REC, msg, REC);
      __atomic_store_n(head, ++h, __ATOMIC_RELEASE);
    }
    _exit(0);
  }
  pin(cpu_recv);
  char got[REC];
  uint64_t h = 0, t = 0;
  double t0 = 0;
  for (long i = 0; i < count; i++) {
    if (i == warm) t0 = now();
    while (t == h) { h = __atomic_load_n(head, __ATOMIC_ACQUIRE); if (t == h) relax(); }
    memcpy(got, slots + (t % SLOTS) * REC, REC);
    long seq;
    memcpy(&seq, got, 8);
    if (seq != i) { fprintf(stderr, "bad message %ld\n", i); return 1; }
    __atomic_store_n(tail, ++t, __ATOMIC_RELEASE);
  }
  double dt = now() - t0;
  waitpid(pid, NULL, 0);
  printf("%.0f\n", (count - warm) / dt);
  return 0;
}
