# A Python consumer of docs/guide.md's publish/subscribe example: reads the topic with sysv_ipc
# from the documented layout (README, "Publish/subscribe"), until the producer closes it.
#
#   python3 consumer.py [TOPIC]        (pip install sysv_ipc)
#
# sysv_ipc has no atomic operations and no futex: this reader polls, and takes no entry of the
# subscriber table (it is unregistered: fine under the 'overwrite' policy, and a 'block'
# publisher would not wait for it). Each read is a memcpy of aligned words; a message is
# accepted only if its slot's stamp and length are the same after the copy as before. Nor has
# it fences: that re-check is sound where loads are not reordered with loads (x86-64); on arm64
# the README's protocol puts a full fence between the copy and the re-check, which Python cannot.
import json
import struct
import sys
import time

import sysv_ipc

MAGIC, VERSION, WRITING, MASK = 0x31425350, 1, 0xFFFFFFFF, 0xFFFFFFFF


def topic_key(name):
    """FNV-1a 32-bit over "sysv-shm/topic:" + the UTF-8 name, as a signed key; 0 and -1 become 1."""
    h = 0x811C9DC5
    for byte in ("sysv-shm/topic:" + name).encode():
        h = ((h ^ byte) * 0x01000193) & MASK
    key = h - (1 << 32) if h >= 1 << 31 else h
    return 1 if key in (0, -1) else key


topic = sys.argv[1] if len(sys.argv) > 1 else "guide/temperature"
mem = sysv_ipc.SharedMemory(topic_key(topic))  # ExistentialError if the producer has not made it


def u32(offset):
    return struct.unpack_from("<I", mem.read(4, offset))[0]


# The header (256 bytes). Check everything before using it as an offset or a length.
if u32(0) != MAGIC or u32(4) != VERSION:
    sys.exit("no topic at this key")
if u32(56) > 128 or mem.read(u32(56), 64).decode() != topic:
    sys.exit("the segment at this key holds another topic")
slots, slot_size, max_message, entries = u32(8), u32(12), u32(16), u32(20)
if slots < 1 or slots > 65536 or slots & (slots - 1) or slot_size != 8 + (max_message + 7) // 8 * 8 \
        or entries < 1 or entries > 4096 or mem.size < 256 + 16 * entries + slots * slot_size:
    sys.exit("corrupt topic header")
slots_at = 256 + 16 * entries  # the subscriber table comes first: 16 bytes per entry
print(f"python: reading segment {mem.id}: {slots} slots of up to {max_message} bytes", flush=True)

cursor = u32(32)  # head: the sequence of the next message, so only new messages are read
missed = 0
while True:
    head = u32(32)
    if cursor == head:
        if u32(28) & 1 and u32(32) == cursor:  # closed, and everything read
            break
        time.sleep(0.01)
        continue
    if (head - cursor) & MASK >= 1 << 31:
        sys.exit("corrupt: the head is behind the cursor")
    if (head - cursor) & MASK > slots:  # fell behind: skip to the oldest message kept
        missed += ((head - cursor) & MASK) - slots
        cursor = (head - slots) & MASK
    at = slots_at + (cursor & (slots - 1)) * slot_size
    stamp, length = struct.unpack("<II", mem.read(8, at))
    if stamp != cursor or length == WRITING:
        continue  # overwritten, or being overwritten: read the head again
    if length > max_message:
        sys.exit("corrupt: a message longer than maxMessage")
    data = mem.read(length, at + 8)
    if struct.unpack("<II", mem.read(8, at)) != (stamp, length):
        continue  # overwritten while it was copied
    cursor = (cursor + 1) & MASK
    reading = json.loads(data)
    print(f"python: reading {reading['seq']} of {reading['of']}: {reading['celsius']} °C", flush=True)
print(f"python: the producer closed the topic; skipped {missed} in all", flush=True)
mem.detach()
