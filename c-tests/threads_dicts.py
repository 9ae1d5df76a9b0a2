"""Builds and frees large dicts and lists from several threads; checks every result.

Run under LD_PRELOAD=libjvmalloc.so by the test suite. Prints "python: ok" on success.
"""
import sys
import threading

ROUNDS = 30
errors = []


def work(tid):
    for r in range(ROUNDS):
        n = 20000 + r * 500
        d = {f"k{tid}-{i}": [i] * (i % 7) for i in range(n)}
        total = sum(len(v) for v in d.values())
        want = sum(i % 7 for i in range(n))
        if total != want:
            errors.append((tid, r, total, want))
        s = "".join(str(i) for i in range(n))
        if len(s) != sum(len(str(i)) for i in range(n)):
            errors.append((tid, r, "str"))
        del d, s


threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    print("python: FAILED", errors[:5])
    sys.exit(1)
print("python: ok")
