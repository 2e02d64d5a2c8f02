"""An object graph with cycles: nodes with parent/child links and a dict
of attributes, dropped in waves, collected by the cyclic GC."""
import gc
import sys


class Node:
    __slots__ = ("parent", "children", "attrs", "__weakref__")

    def __init__(self, parent, i):
        self.parent = parent
        self.children = []
        self.attrs = {"i": i, "label": "n%d" % i}
        if parent is not None:
            parent.children.append(self)


N = int(sys.argv[1]) if len(sys.argv) > 1 else 8
kept = []
total = 0
for wave in range(N):
    root = Node(None, 0)
    nodes = [root]
    for i in range(1, 30000):
        nodes.append(Node(nodes[(i - 1) // 3], i))
    total += len(nodes)
    kept.append(root)
    if len(kept) > 2:
        kept.pop(0)
    del nodes, root
    total += gc.collect()
print(total)
