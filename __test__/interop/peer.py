"""The Python side of the interop protocol (see shm_peer.c), with sysv_ipc
from PyPI: the same line commands, in a process of its own."""
import errno
import os
import struct
import sys

import sysv_ipc

shm = None

# struct sample of shm_peer.c: little-endian, natural alignment (the 4 pad
# bytes a C compiler would add are explicit here); 32 bytes.
SAMPLE = struct.Struct("<Iid16s")
assert SAMPLE.size == 32


def num(s):
    return int(s, 0)


def handle(cmd, args):
    global shm
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
