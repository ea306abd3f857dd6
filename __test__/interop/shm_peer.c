/*
 * A C program that uses System V shared memory the way any C program does
 * (shmget, shmat, shmctl, ftok), driven line by line over stdin by the
 * interop tests. One segment at a time. Numbers may be decimal or 0x hex;
 * MODE is octal digits, as chmod takes them (640).
 *
 *   create KEY SIZE MODE   shmget(KEY, SIZE, IPC_CREAT|IPC_EXCL|MODE) + shmat -> ok ID
 *   open KEY               shmget(KEY, 0, 0) + shmat                  -> ok ID
 *   attach ID              shmat(ID)                                  -> ok ID
 *   write OFFSET HEX       memcpy into the segment                    -> ok
 *   read OFFSET LEN        memcpy out of the segment                  -> ok HEX
 *   add32 OFFSET N         N times __atomic_fetch_add(int32 at OFFSET, 1) -> ok
 *   wait32 OFFSET VALUE    spin until the int32 at OFFSET is VALUE    -> ok
 *   stat                   shmctl(IPC_STAT)                           -> ok key=.. size=.. ...
 *   remove                 shmctl(IPC_RMID)                           -> ok
 *   detach                 shmdt                                      -> ok
 *   getstruct OFFSET       struct sample at OFFSET -> ok magic=0x.. count=.. value=.. name=..
 *   putstruct OFFSET MAGIC COUNT VALUE NAME   writes a struct sample at OFFSET -> ok
 *   ftok PATH PROJ         ftok(PATH, PROJ)                           -> ok KEY
 *   pid                                                               -> ok PID
 *   quit
 *
 * And one semaphore set at a time, as C programs use one beside a segment:
 *
 *   semcreate KEY NSEMS MODE VALUE  semget(KEY, NSEMS, IPC_CREAT|IPC_EXCL|MODE),
 *                          then SETVAL of each to VALUE (no semop: otime
 *                          stays unset, as in most C programs)   -> ok SEMID
 *   semopen KEY            semget(KEY, 0, 0)                          -> ok SEMID
 *   semop INDEX DELTA [undo]  one semop, blocking                     -> ok
 *   semval INDEX           semctl(GETVAL)                             -> ok VALUE
 *   semcounts INDEX        semctl(GETNCNT, GETZCNT, GETPID)           -> ok NCNT ZCNT PID
 *   semstat                semctl(IPC_STAT) -> ok key=.. nsems=.. mode=.. uid=.. gid=.. cuid=.. cgid=.. otime=..
 *   semrm                  semctl(IPC_RMID)                           -> ok
 *   lockedadd32 OFFSET N INDEX  N times: take semaphore INDEX (semop -1,
 *                          SEM_UNDO), add 1 to the int32 at OFFSET with a
 *                          plain (not atomic) load, a short busy loop and a
 *                          store, give it back (+1); counts the takes that
 *                          had to wait                                -> ok WAITED
 *
 * A failure answers "err ERRNO_NAME message" (or "err EUSAGE ...").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <unistd.h>

/* The layout the interop tests share: what a C header would declare.
 * Native byte order (little-endian on x86-64 and arm64), natural alignment:
 * magic at 0, count at 4, value at 8, name at 16; 32 bytes in all. */
struct sample {
  uint32_t magic;
  int32_t count;
  double value;
  char name[16];
};
_Static_assert(sizeof(struct sample) == 32, "struct sample is 32 bytes");

/* The caller of semctl defines union semun (see semctl(2)). */
union semun {
  int val;
  struct semid_ds *buf;
  unsigned short *array;
};

static int semid = -1;
static int shmid = -1;
static unsigned char *base = NULL;
static size_t size = 0;

static const char *errname(int e) {
  switch (e) {
  case EACCES: return "EACCES";
  case EEXIST: return "EEXIST";
  case EINVAL: return "EINVAL";
  case ENOENT: return "ENOENT";
  case ENOMEM: return "ENOMEM";
  case ENOSPC: return "ENOSPC";
  case EPERM: return "EPERM";
  case EIDRM: return "EIDRM";
  case EAGAIN: return "EAGAIN";
  case ERANGE: return "ERANGE";
  case EFBIG: return "EFBIG";
  default: return "EOTHER";
  }
}

static void fail(const char *what) {
  int e = errno;
  printf("err %s %s: %s\n", errname(e), what, strerror(e));
}

static unsigned long long num(const char *s) { return strtoull(s, NULL, 0); }

static int attach(int id) {
  void *p = shmat(id, NULL, 0);
  if (p == (void *)-1) return -1;
  struct shmid_ds ds;
  if (shmctl(id, IPC_STAT, &ds) < 0) {
    int e = errno;
    shmdt(p);
    errno = e;
    return -1;
  }
  shmid = id;
  base = p;
  size = ds.shm_segsz;
  return 0;
}

static int in_range(unsigned long long off, unsigned long long len) {
  if (!base) {
    printf("err EUSAGE not attached\n");
    return 0;
  }
  if (off > size || len > size - off) {
    printf("err EUSAGE range %llu+%llu outside %zu bytes\n", off, len, size);
    return 0;
  }
  return 1;
}

int main(void) {
  char line[1 << 16];
  setvbuf(stdout, NULL, _IOLBF, 0);
  while (fgets(line, sizeof line, stdin)) {
    char *save = NULL;
    char *cmd = strtok_r(line, " \n", &save);
    char *a = cmd ? strtok_r(NULL, " \n", &save) : NULL;
    char *b = a ? strtok_r(NULL, " \n", &save) : NULL;
    char *c = b ? strtok_r(NULL, " \n", &save) : NULL;
    if (!cmd) continue;
    if (!strcmp(cmd, "create") && c) {
      int id = shmget((key_t)num(a), (size_t)num(b), IPC_CREAT | IPC_EXCL | (int)strtoul(c, NULL, 8));
      if (id < 0 || attach(id) < 0) fail("create");
      else printf("ok %d\n", id);
    } else if (!strcmp(cmd, "open") && a) {
      int id = shmget((key_t)num(a), 0, 0);
      if (id < 0 || attach(id) < 0) fail("open");
      else printf("ok %d\n", id);
    } else if (!strcmp(cmd, "attach") && a) {
      if (attach((int)num(a)) < 0) fail("attach");
      else printf("ok %d\n", shmid);
    } else if (!strcmp(cmd, "write") && b) {
      size_t n = strlen(b) / 2;
      unsigned long long off = num(a);
      if (!in_range(off, n)) continue;
      for (size_t i = 0; i < n; i++) {
        unsigned int byte;
        sscanf(b + 2 * i, "%2x", &byte);
        base[off + i] = (unsigned char)byte;
      }
      printf("ok\n");
    } else if (!strcmp(cmd, "read") && b) {
      unsigned long long off = num(a), n = num(b);
      if (!in_range(off, n)) continue;
      fputs("ok ", stdout);
      for (unsigned long long i = 0; i < n; i++) printf("%02x", base[off + i]);
      putchar('\n');
    } else if (!strcmp(cmd, "add32") && b) {
      unsigned long long off = num(a), n = num(b);
      if (!in_range(off, 4) || off % 4) continue;
      int32_t *p = (int32_t *)(base + off);
      for (unsigned long long i = 0; i < n; i++) __atomic_fetch_add(p, 1, __ATOMIC_SEQ_CST);
      printf("ok\n");
    } else if (!strcmp(cmd, "wait32") && b) {
      unsigned long long off = num(a);
      int32_t want = (int32_t)strtoll(b, NULL, 0);
      if (!in_range(off, 4) || off % 4) continue;
      int32_t *p = (int32_t *)(base + off);
      while (__atomic_load_n(p, __ATOMIC_SEQ_CST) != want) usleep(100);
      printf("ok\n");
    } else if (!strcmp(cmd, "stat")) {
      struct shmid_ds ds;
      if (shmctl(shmid, IPC_STAT, &ds) < 0) {
        fail("stat");
        continue;
      }
      printf("ok key=0x%08x size=%zu mode=0%o nattch=%lu cpid=%d lpid=%d uid=%u gid=%u cuid=%u cgid=%u dest=%d\n",
             (unsigned)ds.shm_perm.__key, (size_t)ds.shm_segsz, ds.shm_perm.mode & 0777,
             (unsigned long)ds.shm_nattch, ds.shm_cpid, ds.shm_lpid, ds.shm_perm.uid, ds.shm_perm.gid,
             ds.shm_perm.cuid, ds.shm_perm.cgid, (ds.shm_perm.mode & SHM_DEST) ? 1 : 0);
    } else if (!strcmp(cmd, "remove")) {
      if (shmctl(shmid, IPC_RMID, NULL) < 0) fail("remove");
      else printf("ok\n");
    } else if (!strcmp(cmd, "detach")) {
      if (base && shmdt(base) < 0) fail("detach");
      else {
        base = NULL;
        printf("ok\n");
      }
    } else if (!strcmp(cmd, "getstruct") && a) {
      unsigned long long off = num(a);
      if (!in_range(off, sizeof(struct sample)) || off % 8) continue;
      const struct sample *p = (const struct sample *)(base + off);
      printf("ok magic=0x%08x count=%d value=%.17g name=%.16s\n", p->magic, p->count, p->value, p->name);
    } else if (!strcmp(cmd, "putstruct") && c) {
      char *value = strtok_r(NULL, " \n", &save);
      char *name = value ? strtok_r(NULL, " \n", &save) : NULL;
      unsigned long long off = num(a);
      if (!name) {
        printf("err EUSAGE putstruct OFFSET MAGIC COUNT VALUE NAME\n");
        continue;
      }
      if (!in_range(off, sizeof(struct sample)) || off % 8) continue;
      struct sample *p = (struct sample *)(base + off);
      p->magic = (uint32_t)num(b);
      p->count = (int32_t)strtol(c, NULL, 0);
      p->value = strtod(value, NULL);
      memset(p->name, 0, sizeof p->name);
      strncpy(p->name, name, sizeof p->name - 1);
      printf("ok\n");
    } else if (!strcmp(cmd, "ftok") && b) {
      key_t k = ftok(a, (int)num(b));
      if (k == -1) fail("ftok");
      else printf("ok 0x%08x\n", (unsigned)k);
    } else if (!strcmp(cmd, "semcreate") && c) {
      char *v = strtok_r(NULL, " \n", &save);
      if (!v) {
        printf("err EUSAGE semcreate KEY NSEMS MODE VALUE\n");
        continue;
      }
      int n = (int)num(b);
      int id = semget((key_t)num(a), n, IPC_CREAT | IPC_EXCL | (int)strtoul(c, NULL, 8));
      if (id < 0) {
        fail("semcreate");
        continue;
      }
      int i = 0;
      for (; i < n; i++) {
        union semun arg = {.val = (int)num(v)};
        if (semctl(id, i, SETVAL, arg) < 0) break;
      }
      if (i < n) {
        fail("semcreate SETVAL");
        semctl(id, 0, IPC_RMID);
        continue;
      }
      semid = id;
      printf("ok %d\n", id);
    } else if (!strcmp(cmd, "semopen") && a) {
      int id = semget((key_t)num(a), 0, 0);
      if (id < 0) fail("semopen");
      else {
        semid = id;
        printf("ok %d\n", id);
      }
    } else if (!strcmp(cmd, "semop") && b) {
      struct sembuf op = {.sem_num = (unsigned short)num(a), .sem_op = (short)strtol(b, NULL, 0),
                          .sem_flg = (short)(c && !strcmp(c, "undo") ? SEM_UNDO : 0)};
      if (semop(semid, &op, 1) < 0) fail("semop");
      else printf("ok\n");
    } else if (!strcmp(cmd, "semval") && a) {
      int v = semctl(semid, (int)num(a), GETVAL);
      if (v < 0) fail("semval");
      else printf("ok %d\n", v);
    } else if (!strcmp(cmd, "semcounts") && a) {
      int i = (int)num(a);
      int n = semctl(semid, i, GETNCNT), z = semctl(semid, i, GETZCNT), pid = semctl(semid, i, GETPID);
      if (n < 0 || z < 0 || pid < 0) fail("semcounts");
      else printf("ok %d %d %d\n", n, z, pid);
    } else if (!strcmp(cmd, "semstat")) {
      struct semid_ds ds;
      union semun arg = {.buf = &ds};
      if (semctl(semid, 0, IPC_STAT, arg) < 0) {
        fail("semstat");
        continue;
      }
      printf("ok key=0x%08x nsems=%lu mode=0%o uid=%u gid=%u cuid=%u cgid=%u otime=%lld\n",
             (unsigned)ds.sem_perm.__key, (unsigned long)ds.sem_nsems, ds.sem_perm.mode & 0777, ds.sem_perm.uid,
             ds.sem_perm.gid, ds.sem_perm.cuid, ds.sem_perm.cgid, (long long)ds.sem_otime);
    } else if (!strcmp(cmd, "semrm")) {
      if (semctl(semid, 0, IPC_RMID) < 0) fail("semrm");
      else printf("ok\n");
    } else if (!strcmp(cmd, "lockedadd32") && c) {
      unsigned long long off = num(a), n = num(b);
      unsigned short index = (unsigned short)num(c);
      if (!in_range(off, 4) || off % 4) continue;
      volatile int32_t *p = (volatile int32_t *)(base + off);
      struct sembuf take = {.sem_num = index, .sem_op = -1, .sem_flg = SEM_UNDO | IPC_NOWAIT};
      struct sembuf give = {.sem_num = index, .sem_op = 1, .sem_flg = SEM_UNDO};
      unsigned long long waited = 0, i = 0;
      for (; i < n; i++) {
        take.sem_flg = SEM_UNDO | IPC_NOWAIT;
        if (semop(semid, &take, 1) < 0) {
          if (errno != EAGAIN) break;
          waited++;
          take.sem_flg = SEM_UNDO;
          if (semop(semid, &take, 1) < 0) break;
        }
        /* A plain read-modify-write, held open a little (as real work would): only the
         * semaphore keeps it whole. */
        int32_t v = *p;
        for (volatile int k = 0; k < 100; k++) {
        }
        *p = v + 1;
        if (semop(semid, &give, 1) < 0) break;
      }
      if (i < n) fail("lockedadd32");
      else printf("ok %llu\n", waited);
    } else if (!strcmp(cmd, "pid")) {
      printf("ok %d\n", (int)getpid());
    } else if (!strcmp(cmd, "quit")) {
      break;
    } else {
      printf("err EUSAGE unknown command %s\n", cmd);
    }
  }
  if (base) shmdt(base);
  return 0;
}
