"""HTTP/1.1 requests as they crossed the loopback interface, read from a tcpdump capture.

The restart-latency benchmark uses it to time the bar's two moments where they happen: the 11
callback arriving at the receiver and the acquire request leaving it, each the kernel's
timestamp of the first TCP segment that carried the request. Plain HTTP over IPv4 only (what
the benchmark sends); segments are put back in sequence order per direction, retransmissions
dropped.
"""
import json, os, shutil, signal, struct, subprocess, time

class Capture:
    """tcpdump on `lo` for the given TCP ports, from start() to stop()."""

    def __init__(self, path, ports):
        self.path, self.ports, self.process = path, ports, None

    @staticmethod
    def available():
        return shutil.which("tcpdump") is not None and (os.geteuid() == 0 if hasattr(os, "geteuid") else False)

    def start(self):
        expression = "tcp and (" + " or ".join(f"port {p}" for p in self.ports) + ")"
        # -U: write each packet as it comes, so stop() loses nothing; -s 0: whole packets.
        self.process = subprocess.Popen(["tcpdump", "-i", "lo", "-s", "0", "-U", "-n", "-w", self.path, expression],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # tcpdump says "listening on lo" once the capture runs.
        line = self.process.stderr.readline().decode(errors="replace")
        if "listening" not in line:
            raise RuntimeError("tcpdump did not start: " + line.strip())

    def stop(self):
        if self.process and self.process.poll() is None:
            time.sleep(0.2)
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=10)

def _packets(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic in (0xa1b2c3d4, 0xa1b23c4d):
        endian = "<"
    else:
        endian = ">"
    nano = struct.unpack(endian + "I", data[:4])[0] == 0xa1b23c4d
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    link_header = {1: 14, 113: 16, 276: 20, 0: 4}.get(linktype)
    if link_header is None:
        raise RuntimeError(f"unsupported link type {linktype}")
    offset = 24
    while offset + 16 <= len(data):
        seconds, fraction, included, _ = struct.unpack(endian + "IIII", data[offset:offset + 16])
        frame = data[offset + 16:offset + 16 + included]
        offset += 16 + included
        yield seconds + fraction / (1e9 if nano else 1e6), frame[link_header:]

def requests(path):
    """Every HTTP request in the capture: dicts with time (s), dport, method, target, body."""
    streams = {}
    for stamp, ip in _packets(path):
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        tcp = ip[ihl:total]
        sport, dport, seq = struct.unpack(">HHI", tcp[:8])
        payload = tcp[(tcp[12] >> 4) * 4:]
        flags = tcp[13]
        stream = streams.setdefault((ip[12:16], sport, ip[16:20], dport), {"next": None, "segments": []})
        if flags & 0x02:  # SYN: the stream's first byte is seq + 1
            stream["next"] = (seq + 1) & 0xFFFFFFFF
            continue
        if payload:
            stream["segments"].append((seq, stamp, payload))
    found = []
    for (_, _, _, dport), stream in streams.items():
        if stream["next"] is None or not stream["segments"]:
            continue  # the connection opened before the capture: its byte offsets are unknown
        base = stream["next"]
        seen, pieces = set(), []
        for seq, stamp, payload in sorted(stream["segments"], key=lambda s: ((s[0] - base) & 0xFFFFFFFF, s[1])):
            relative = (seq - base) & 0xFFFFFFFF
            if relative in seen:
                continue  # a retransmission
            seen.add(relative)
            pieces.append((relative, stamp, payload))
        buffer = bytearray()
        starts = []  # (offset in buffer, timestamp of the segment that carried it)
        for relative, stamp, payload in pieces:
            if relative != len(buffer):
                if relative < len(buffer):
                    payload = payload[len(buffer) - relative:]
                else:
                    break  # a gap: the capture lost bytes; stop this stream here
            starts.append((len(buffer), stamp))
            buffer += payload
        position = 0
        while True:
            head_end = buffer.find(b"\r\n\r\n", position)
            if head_end < 0:
                break
            head = bytes(buffer[position:head_end]).decode("latin-1").split("\r\n")
            parts = head[0].split(" ")
            if len(parts) < 3 or not parts[2].startswith("HTTP/"):
                break
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            body_start = head_end + 4
            stamp = max((t for o, t in starts if o <= position), default=None)
            found.append({"time": stamp, "dport": dport, "method": parts[0], "target": parts[1],
                          "body": bytes(buffer[body_start:body_start + length])})
            position = body_start + length
    return found

def json_body(request):
    try:
        return json.loads(request["body"] or b"null")
    except ValueError:
        return None
