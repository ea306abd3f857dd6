/* C reference of the bulk transfer: a two-slot ring in SysV shared memory between two processes
 * (fork), futex handoff with waiting flags (spin, then sleep). The writer fills each message
 * (memset, then an 8-byte sequence stamp); the reader checks the stamp and memcmps the rest with
 * the expected pattern. Prints the reader's throughput in bytes per second.
 *
 *   bulk SIZE COUNT WARMUP */
#include "common.h"

#define LINE 64
#define SPIN_US 10.0
int main(int argc, char **argv) {
  if (argc < 4) return 2;
  size_t size = strtoul(argv[1], NULL, 0);
  long count = atol(argv[2]), warm = atol(argv[3]);
  char *base = shm_new(4096 + 2 * size, NULL);
  uint32_t *state = (uint32_t *)base;            /* state[0] at 0, state[1] at 64: 0 empty, 1 full */
  uint32_t *rx_wait = (uint32_t *)(base + 2 * LINE), *tx_wait = (uint32_t *)(base + 3 * LINE);
  char *slot[2] = { base + 4096, base + 4096 + size };
  pid_t pid = fork();
  if (pid == 0) { /* writer */
    for (long i = 0; i < count; i++) {
      int s = i & 1;
      await_value((uint32_t *)((char *)state + s * LINE), 0, tx_wait, SPIN_US);
      memset(slot[s], (int)(i % 4) + 1, size);
      memcpy(slot[s], &i, 8);
      publish((uint32_t *)((char *)state + s * LINE), 1, rx_wait);
    }
    _exit(0);
  }
  char *expect[4];
  for (int k = 0; k < 4; k++) { expect[k] = malloc(size); memset(expect[k], k + 1, size); }
  long bad = 0;
  double t0 = 0;
  for (long i = 0; i < count; i++) {
    if (i == warm) t0 = now();
    int s = i & 1;
    await_value((uint32_t *)((char *)state + s * LINE), 1, rx_wait, SPIN_US);
    long stamp;
    memcpy(&stamp, slot[s], 8);
    if (stamp != i || memcmp(slot[s] + 8, expect[i % 4] + 8, size - 8) != 0) bad++;
    publish((uint32_t *)((char *)state + s * LINE), 0, tx_wait);
  }
  double dt = now() - t0;
  waitpid(pid, NULL, 0);
  if (bad) { fprintf(stderr, "%ld bad messages\n", bad); return 1; }
  printf("%.0f\n", (double)(count - warm) * size / dt);
  return 0;
}
