"""dict/list/str churn: short-lived dicts of lists of strings, as a web
request handler or a parser makes them; a window of them stays alive."""
import sys

N = int(sys.argv[1]) if len(sys.argv) > 1 else 60000
window = []
total = 0
for i in range(N):
    d = {"id": i, "name": "user%d" % i, "tags": ["t%d" % (i % 7), "x" * (i % 40)],
         "scores": [i * 0.5, i % 13, i // 3]}
    d["key-" + str(i % 100)] = str(i) * (1 + i % 5)
    d["items"] = [str(j) for j in range(i % 12)]
    window.append(d)
    if len(window) > 2000:
        old = window.pop(i % 2000)
        total += len(old["name"]) + len(old["items"])
    if i % 5000 == 0:
        s = ",".join(x["name"] for x in window[:500])
        total += len(s.split(","))
print(total)
