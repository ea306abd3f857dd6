/* C reference of publish/subscribe: a publisher and SUBS subscriber processes (fork) on one segment of
 * the sysv-shm topic layout (README, "Publish/subscribe"), block policy: the publisher waits on the
 * space wait cell while a subscriber is `slots` behind, subscribers sleep on the head wait cell (the
 * wait cell protocol: count, FUTEX_WAIT, uncount; store, fence, FUTEX_WAKE all only when counted). No
 * spinning, as the protocol is written; each subscriber checks every message's sequence stamp.
 *
 *   pubsub rate SIZE SLOTS SUBS COUNT WARMUP CPU_PUB CPU_SUB
 *       prints the slowest subscriber's messages per second, then its bytes per second
 *   pubsub latency COUNT WARMUP CPU_PUB CPU_SUB
 *       one subscriber, 64-byte messages, one at a time: the publisher stamps CLOCK_MONOTONIC, publishes,
 *       and waits (on the space cell) until the subscriber's cursor moved; prints the median one-way
 *       latency (publish to received) in ns
 * (CPU -1: anywhere) */
#include "common.h"

#define MAGIC 0x31425350u
#define HEADER 256
#define ENTRY 16
#define WRITING 0xffffffffu
enum { HEAD = 32, SPACE = 40 };

static char *base;
static uint32_t slots, slot_size, subs;
#define W(off) ((uint32_t *)(base + (off)))
static size_t slot_at(uint32_t s) { return HEADER + (size_t)ENTRY * subs + (size_t)slot_size * (s & (slots - 1)); }

static void cell_wait(size_t off, uint32_t v) {
  __atomic_fetch_add(W(off + 4), 1, __ATOMIC_SEQ_CST);
  futex_wait(W(off), v);
  __atomic_fetch_sub(W(off + 4), 1, __ATOMIC_SEQ_CST);
}
static void cell_wake(size_t off) {
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  if (__atomic_load_n(W(off + 4), __ATOMIC_SEQ_CST)) futex_wake(W(off), INT32_MAX);
}

static void setup(uint32_t size, uint32_t n, uint32_t m) {
  slots = n;
  subs = m;
  slot_size = 8 + ((size + 7) & ~7u);
  base = shm_new(HEADER + (size_t)ENTRY * m + (size_t)n * slot_size, NULL);
  uint32_t hdr[] = { MAGIC, 1, n, slot_size, size, m, 1 /* block */ };
  memcpy(base, hdr, sizeof hdr);
  for (uint32_t s = 0; s < n; s++) *W(slot_at(s) + 4) = WRITING;
}

/* Publishes message s of `len` bytes from `src` (the block policy's wait first). */
static void topic_publish(uint32_t s, const char *src, uint32_t len) {
  for (;;) {
    uint32_t v = __atomic_load_n(W(SPACE), __ATOMIC_SEQ_CST), behind = 0;
    for (uint32_t i = 0; i < subs && !behind; i++) {
      size_t e = HEADER + (size_t)ENTRY * i;
      if (__atomic_load_n(W(e + 4), __ATOMIC_SEQ_CST) == 0 || __atomic_load_n(W(e), __ATOMIC_SEQ_CST) == 0) continue;
      behind = s - __atomic_load_n(W(e + 8), __ATOMIC_SEQ_CST) >= slots;
    }
    if (!behind) break;
    cell_wait(SPACE, v);
  }
  size_t at = slot_at(s);
  __atomic_store_n(W(at + 4), WRITING, __ATOMIC_SEQ_CST);
  __atomic_thread_fence(__ATOMIC_SEQ_CST); /* the mark before any data byte */
  memcpy(base + at + 8, src, len);
  __atomic_store_n(W(at), s, __ATOMIC_SEQ_CST);
  __atomic_store_n(W(at + 4), len, __ATOMIC_SEQ_CST);
  __atomic_store_n(W(HEAD), s + 1, __ATOMIC_SEQ_CST);
  cell_wake(HEAD);
}

/* Registers in entry i (cursor = head, then a non-zero start time: counted from then on). */
static size_t join(uint32_t i) {
  size_t e = HEADER + (size_t)ENTRY * i;
  __atomic_store_n(W(e), (uint32_t)getpid(), __ATOMIC_SEQ_CST);
  __atomic_store_n(W(e + 8), __atomic_load_n(W(HEAD), __ATOMIC_SEQ_CST), __ATOMIC_SEQ_CST);
  __atomic_store_n(W(e + 4), 1, __ATOMIC_SEQ_CST);
  return e; /* the bench publishes only once every subscriber joined: the head is still 0 */
}

/* Receives message c into dst (waiting on the head cell); returns its length. */
static uint32_t receive(size_t e, uint32_t c, char *dst) {
  uint32_t h;
  while ((h = __atomic_load_n(W(HEAD), __ATOMIC_SEQ_CST)) == c) cell_wait(HEAD, h);
  size_t at = slot_at(c);
  uint32_t stamp = __atomic_load_n(W(at), __ATOMIC_SEQ_CST), len = __atomic_load_n(W(at + 4), __ATOMIC_SEQ_CST);
  if (stamp != c || len > slot_size - 8) { fprintf(stderr, "slot %u: stamp %u length %u\n", c, stamp, len); exit(1); }
  memcpy(dst, base + at + 8, len);
  __atomic_thread_fence(__ATOMIC_SEQ_CST); /* the copy's loads before the re-check */
  if (__atomic_load_n(W(at + 4), __ATOMIC_SEQ_CST) != len || __atomic_load_n(W(at), __ATOMIC_SEQ_CST) != stamp) {
    fprintf(stderr, "overwritten under the block policy\n");
    exit(1);
  }
  __atomic_store_n(W(e + 8), c + 1, __ATOMIC_SEQ_CST);
  __atomic_fetch_add(W(SPACE), 1, __ATOMIC_SEQ_CST);
  cell_wake(SPACE);
  return len;
}

static int cmp(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc >= 9 && strcmp(argv[1], "rate") == 0) {
    uint32_t size = atoi(argv[2]), n = atoi(argv[3]), m = atoi(argv[4]);
    long count = atol(argv[5]), warm = atol(argv[6]);
    int cpu_pub = atoi(argv[7]), cpu_sub = atoi(argv[8]);
    setup(size, n, m);
    int fds[2];
    if (pipe(fds) != 0) return 1;
    for (uint32_t k = 0; k < m; k++) {
      if (fork() == 0) {
        pin(cpu_sub);
        size_t e = join(k);
        char *buf = malloc(size);
        double t0 = 0;
        for (long i = 0; i < count; i++) {
          if (i == warm) t0 = now();
          if (receive(e, (uint32_t)i, buf) != size || memcmp(buf, &i, 4) != 0) { fprintf(stderr, "bad message %ld\n", i); _exit(1); }
        }
        double r = (count - warm) / (now() - t0);
        if (write(fds[1], &r, sizeof r) != sizeof r) _exit(1);
        _exit(0);
      }
    }
    pin(cpu_pub);
    for (;;) { /* wait until every subscriber joined */
      uint32_t in = 0;
      for (uint32_t k = 0; k < m; k++) in += __atomic_load_n(W(HEADER + ENTRY * k + 4), __ATOMIC_SEQ_CST) != 0;
      if (in == m) break;
      usleep(100);
    }
    char *msg = calloc(1, size);
    for (long i = 0; i < count; i++) {
      memcpy(msg, &i, 4);
      topic_publish((uint32_t)i, msg, size);
    }
    double slowest = 0;
    for (uint32_t k = 0; k < m; k++) {
      double r;
      int status;
      if (read(fds[0], &r, sizeof r) != sizeof r) return 1;
      if (slowest == 0 || r < slowest) slowest = r;
      wait(&status);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
    }
    printf("%.0f %.0f\n", slowest, slowest * size);
    return 0;
  }
  if (argc >= 6 && strcmp(argv[1], "latency") == 0) {
    long count = atol(argv[2]), warm = atol(argv[3]);
    int cpu_pub = atoi(argv[4]), cpu_sub = atoi(argv[5]);
    setup(64, 64, 1);
    int fds[2];
    if (pipe(fds) != 0) return 1;
    pid_t pid = fork();
    if (pid == 0) {
      pin(cpu_sub);
      size_t e = join(0);
      long *lat = malloc(sizeof(long) * count);
      char buf[64];
      for (long i = 0; i < count; i++) {
        receive(e, (uint32_t)i, buf);
        double t1 = now(), t0;
        memcpy(&t0, buf + 8, 8);
        lat[i] = (long)((t1 - t0) * 1e9);
      }
      qsort(lat + warm, count - warm, sizeof(long), cmp);
      long median = lat[warm + (count - warm) / 2];
      if (write(fds[1], &median, sizeof median) != sizeof median) _exit(1);
      _exit(0);
    }
    pin(cpu_pub);
    while (__atomic_load_n(W(HEADER + 4), __ATOMIC_SEQ_CST) == 0) usleep(100);
    char msg[64] = { 0 };
    for (long i = 0; i < count; i++) {
      double t = now();
      memcpy(msg, &i, 4);
      memcpy(msg + 8, &t, 8);
      topic_publish((uint32_t)i, msg, 64);
      /* One at a time: wait until the subscriber's cursor moved. */
      for (;;) {
        uint32_t v = __atomic_load_n(W(SPACE), __ATOMIC_SEQ_CST);
        if (__atomic_load_n(W(HEADER + 8), __ATOMIC_SEQ_CST) == (uint32_t)i + 1) break;
        cell_wait(SPACE, v);
      }
    }
    long median;
    if (read(fds[0], &median, sizeof median) != sizeof median) return 1;
    waitpid(pid, NULL, 0);
    printf("%ld\n", median);
    return 0;
  }
  fprintf(stderr, "usage: pubsub rate SIZE SLOTS SUBS COUNT WARMUP CPU_PUB CPU_SUB | pubsub latency COUNT WARMUP CPU_PUB CPU_SUB\n");
  return 2;
}
