#!/usr/bin/env python3
"""What a subscribe that brings new URI templates costs: the time from a
Mercure subscribe with 64 new templates to its stream's head (or its
refusal), and the slowest /health answered meanwhile (what the loop was held
for: compiling is done a slice per loop pass), for four shapes, three rounds
each, on a release hub started here (and stopped by its PID). The total is
bounded by --max-subscribe-compiled-bytes (issue 21).

    cargo build --release --bin sseloop && python3 benches/subscribe_compile.py
"""
import socket, subprocess, threading, time, urllib.parse

PORT = 18557
hub = subprocess.Popen(
    # URI templates (`topic=`) are Mercure 0.x: the compatibility flag.
    ["./target/release/sseloop", "--listen", f"127.0.0.1:{PORT}", "--anonymous",
     "--mercure-compat", "0.x", "--heartbeat", "0", "--log-level", "warn"],
    stderr=subprocess.DEVNULL)
try:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", PORT)).close()
            break
        except OSError:
            time.sleep(0.05)

    def head_of(target):
        s = socket.create_connection(("127.0.0.1", PORT))
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        s.close()
        return buf.split(b" ")[1].decode()

    shapes = {
        "users/42/{id}": lambda r, i: f"https://example.com/users/{r}{i}/{{id}}",
        "{a}/{b}yy{c}zz": lambda r, i: f"https://example.com/{r}{{a{i}}}/{{b}}yy{{c}}zz",
        "/p/{#a}x{#a}x": lambda r, i: f"/p{r}{i}/{{#a}}x{{#a}}x",
        "{a}%4 x6 (near --max-compiled-bytes)": lambda r, i: f"https://example.com/{r}{i}/" + "{a}%4" * 6 + "{z}",
    }
    def probe(slowest, stop):
        while not stop.is_set():
            started = time.perf_counter()
            head_of("/health")
            slowest.append(time.perf_counter() - started)

    for name, make in shapes.items():
        rounds = []
        for r in range(3):
            query = "&".join("topic=" + urllib.parse.quote(make(f"r{r}x", i), safe="") for i in range(64))
            slowest, stop = [], threading.Event()
            prober = threading.Thread(target=probe, args=(slowest, stop))
            prober.start()
            time.sleep(0.02)
            started = time.perf_counter()
            status = head_of(f"/.well-known/mercure?{query}")
            took = time.perf_counter() - started
            time.sleep(0.02)
            stop.set()
            prober.join()
            rounds.append(f"{status} in {took * 1000:.1f} ms (/health within {max(slowest) * 1000:.1f} ms)")
        print(f"64 new templates like {name}: " + ", ".join(rounds))
finally:
    hub.terminate()
    hub.wait()
