/* The C twin of reader.mjs (docs/guide.md): opens the writer's segment by
 * the same key and prints each message until "bye" or until the writer
 * removes the segment.
 *
 *   cc -o reader reader.c && ./reader [PATH]     (the same PATH as the writer's)
 */
#define _GNU_SOURCE /* SHM_DEST, usleep */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <unistd.h>

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "/tmp";
  setvbuf(stdout, NULL, _IOLBF, 0);

  key_t key = ftok(path, 42); /* the writer's ftok(path, 42) */
  if (key == -1) { perror("ftok"); return 1; }
  int id = shmget(key, 0, 0);
  if (id == -1) { perror("shmget"); return 1; }
  unsigned char *base = shmat(id, NULL, 0);
  if (base == (void *)-1) { perror("shmat"); return 1; }
  printf("reader.c: opened segment %d\n", id);

  /* The writer's layout: int32 sequence (odd while writing) at 0, int32
   * length at 4, UTF-8 text at 8. Native byte order on both sides. */
  int32_t *header = (int32_t *)base;
  int32_t last = 0;
  char text[4096];
  for (;;) {
    int32_t seq = __atomic_load_n(&header[0], __ATOMIC_ACQUIRE);
    if (seq % 2 == 1 || seq == last) {
      struct shmid_ds ds;
      if (shmctl(id, IPC_STAT, &ds) == 0 && (ds.shm_perm.mode & SHM_DEST)) {
        puts("reader.c: the writer removed the segment");
        break;
      }
      usleep(50 * 1000);
      continue;
    }
    int32_t len = __atomic_load_n(&header[1], __ATOMIC_ACQUIRE);
    if (len < 0 || len > (int32_t)sizeof text - 1) continue;
    memcpy(text, base + 8, (size_t)len);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(&header[0], __ATOMIC_RELAXED) != seq) continue; /* overwritten meanwhile */
    text[len] = '\0';
    last = seq;
    printf("reader.c: %s\n", text);
    if (strcmp(text, "bye") == 0) break;
  }
  shmdt(base);
  return 0;
}
