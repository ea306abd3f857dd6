"""The Python side of the interop protocol (see shm_peer.c), with sysv_ipc
from PyPI: the same line commands, in a process of its own.

Semaphores are sysv_ipc.Semaphore, a set of one semaphore named by a key:

  semcreate KEY VALUE MODE  Semaphore(KEY, IPC_CREX, MODE, VALUE)   -> ok SEMID
  semopen KEY               Semaphore(KEY)                          -> ok SEMID
  semacquire                acquire(), blocking                     -> ok
  semtry                    acquire() with block = False            -> ok 1, or ok 0 if busy
  semrelease                release()                               -> ok
  semstat                   -> ok value=.. ncnt=.. zcnt=.. lastpid=.. mode=.. uid=.. gid=.. cuid=.. cgid=.. otime=..
  semremove                 remove()                                -> ok
  wait32 OFFSET VALUE       poll until the int32 at OFFSET is VALUE -> ok
  lockedadd32 OFFSET N      N times: acquire, read the int32 at OFFSET of the
                            segment, write it + 1, release          -> ok WAITED
"""
import errno
import os
import struct
import sys
import time

import sysv_ipc

shm = None
sem = None

# struct sample of shm_peer.c: little-endian, natural alignment (the 4 pad
# bytes a C compiler would add are explicit here); 32 bytes.
SAMPLE = struct.Struct("<Iid16s")
assert SAMPLE.size == 32


def num(s):
    return int(s, 0)


def handle(cmd, args):
    global shm, sem
    if cmd == "create":
        key, size, mode = num(args[0]), num(args[1]), int(args[2], 8)
        shm = sysv_ipc.SharedMemory(key, sysv_ipc.IPC_CREX, mode=mode, size=size)
        return str(shm.id)
    if cmd == "open":
        shm = sysv_ipc.SharedMemory(num(args[0]))
        return str(shm.id)
    if cmd == "attach":
        shm = sysv_ipc.attach(num(args[0]))
        return str(shm.id)
    if cmd == "write":
        shm.write(bytes.fromhex(args[1]), num(args[0]))
        return ""
    if cmd == "read":
        return shm.read(num(args[1]), num(args[0])).hex()
    if cmd == "stat":
        # The attributes of sysv_ipc.SharedMemory read shmctl(IPC_STAT) on
        # each access, except key, which is the key it was opened with. Its
        # mode has the kernel's SHM_DEST bit (0o1000) once the segment is removed.
        return (
            f"key=0x{shm.key & 0xFFFFFFFF:08x} size={shm.size} mode=0{shm.mode & 0o777:o} "
            f"nattch={shm.number_attached} cpid={shm.creator_pid} lpid={shm.last_pid} "
            f"uid={shm.uid} gid={shm.gid} cuid={shm.cuid} cgid={shm.cgid} dest={int(bool(shm.mode & 0o1000))}"
        )
    if cmd == "remove":
        shm.remove()
        return ""
    if cmd == "detach":
        if shm is not None and shm.attached:
            shm.detach()
        return ""
    if cmd == "getstruct":
        magic, count, value, name = SAMPLE.unpack(shm.read(SAMPLE.size, num(args[0])))
        name = name.split(b"\0", 1)[0].decode()
        return f"magic=0x{magic:08x} count={count} value={value!r} name={name}"
    if cmd == "putstruct":
        off, magic, count, value, name = num(args[0]), num(args[1]), int(args[2], 0), float(args[3]), args[4]
        shm.write(SAMPLE.pack(magic, count, value, name.encode()[:15]), off)
        return ""
    if cmd == "ftok":
        return f"0x{sysv_ipc.ftok(args[0], num(args[1]), silence_warning=True) & 0xFFFFFFFF:08x}"
    if cmd == "wait32":
        # Polls the int32 at OFFSET until it is VALUE (as shm_peer.c's wait32).
        off, want = num(args[0]), int(args[1], 0)
        while struct.unpack("<i", shm.read(4, off))[0] != want:
            time.sleep(0.0001)
        return ""
    if cmd == "semcreate":
        sem = sysv_ipc.Semaphore(num(args[0]), sysv_ipc.IPC_CREX, int(args[2], 8), num(args[1]))
        return str(sem.id)
    if cmd == "semopen":
        sem = sysv_ipc.Semaphore(num(args[0]))
        return str(sem.id)
    if cmd == "semacquire":
        sem.acquire()
        return ""
    if cmd == "semtry":
        sem.block = False
        try:
            sem.acquire()
            return "1"
        except sysv_ipc.BusyError:
            return "0"
        finally:
            sem.block = True
    if cmd == "semrelease":
        sem.release()
        return ""
    if cmd == "semstat":
        # Each attribute but key is a semctl of the set (GETVAL, GETNCNT, GETZCNT,
        # GETPID, IPC_STAT).
        return (
            f"value={sem.value} ncnt={sem.waiting_for_nonzero} zcnt={sem.waiting_for_zero} "
            f"lastpid={sem.last_pid} mode=0{sem.mode & 0o777:o} uid={sem.uid} gid={sem.gid} "
            f"cuid={sem.cuid} cgid={sem.cgid} otime={int(sem.o_time)}"
        )
    if cmd == "semremove":
        sem.remove()
        return ""
    if cmd == "lockedadd32":
        off, n = num(args[0]), num(args[1])
        waited = 0
        for _ in range(n):
            sem.block = False
            try:
                sem.acquire()
            except sysv_ipc.BusyError:
                waited += 1
                sem.block = True
                sem.acquire()
            # A plain read-modify-write of the counter: only the semaphore keeps it whole.
            (value,) = struct.unpack("<i", shm.read(4, off))
            shm.write(struct.pack("<i", value + 1), off)
            sem.release()
        sem.block = True
        return str(waited)
    if cmd == "pid":
        return str(os.getpid())
    raise ValueError(f"unknown command {cmd}")


def main():
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        try:
            out = handle(words[0], words[1:])
            print(f"ok {out}" if out else "ok", flush=True)
        except sysv_ipc.Error as e:
            # sysv_ipc raises ExistentialError for both EEXIST and ENOENT.
            print(f"err {type(e).__name__} {e}", flush=True)
        except (ValueError, IndexError, AttributeError, OSError) as e:
            code = errno.errorcode.get(getattr(e, "errno", None) or 0, "EUSAGE")
            print(f"err {code} {e}", flush=True)
    if shm is not None and shm.attached:
        shm.detach()


if __name__ == "__main__":
    main()
