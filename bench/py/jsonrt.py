"""A JSON round trip: build nested records, dumps, loads, compare."""
import json
import sys

N = int(sys.argv[1]) if len(sys.argv) > 1 else 12
records = [{"id": i, "name": "item-%05d" % i, "price": i * 1.25,
            "tags": ["a", "bb", "ccc"][: i % 4],
            "attrs": {"k%d" % k: k * i for k in range(i % 8)},
            "children": [{"n": j, "s": "v" * (j % 17)} for j in range(i % 6)]}
           for i in range(4000)]
total = 0
for r in range(N):
    text = json.dumps(records)
    back = json.loads(text)
    assert back[r]["id"] == r
    total += len(text) + len(back)
print(total)
