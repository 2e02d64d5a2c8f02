// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * C++ on the drop-in malloc: std::map, std::string and std::shared_ptr
 * churn across threads, with fork() in the middle of it.  operator new and
 * delete reach malloc and free through libstdc++.
 *
 * Four threads each own a map of strings to shared objects and churn it
 * (insert, overwrite, erase, share between maps through a queue guarded
 * by a mutex); meanwhile the main thread forks: the child churns its own
 * copy of the main thread's map and checks every value, the parent checks
 * that the child's writes never reached it.  The output is deterministic
 * (checksums), so tests/preload/run.sh compares it with a run on glibc.
 *
 * With PYALLOC_EXPECT=1 the program also proves its small blocks come
 * from /dev/pyalloc: a fresh std::string's buffer and a shared_ptr's
 * control block must lie in the device's mapping (/proc/self/maps).
 */
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Obj {
	uint64_t id;
	std::string text;
	std::vector<int> nums;
	Obj(uint64_t i, std::string t) : id(i), text(std::move(t)), nums(i % 7, (int)i) {}
};

uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

std::string text_of(uint64_t id)
{
	return "obj-" + std::to_string(id) + std::string(id % 300, (char)('a' + id % 26));
}

bool valid(const std::shared_ptr<Obj> &o)
{
	return o->text == text_of(o->id) && o->nums.size() == o->id % 7;
}

std::mutex qlock;
std::vector<std::shared_ptr<Obj>> queue;

/* Churn @m for @rounds; returns a checksum of the final contents. */
uint64_t churn(std::map<std::string, std::shared_ptr<Obj>> &m, uint64_t seed,
	       int rounds, bool share)
{
	for (int r = 0; r < rounds; r++) {
		uint64_t k = mix(seed * 1000003 + r);
		std::string key = "k" + std::to_string(k % 512);

		switch (k % 5) {
		case 0:
		case 1:
			m[key] = std::make_shared<Obj>(k % 100000, text_of(k % 100000));
			break;
		case 2:
			m.erase(key);
			break;
		case 3:
			if (share) {
				auto it = m.find(key);
				if (it != m.end()) {
					std::lock_guard<std::mutex> g(qlock);
					queue.push_back(it->second);
					if (queue.size() > 256)
						queue.erase(queue.begin(), queue.begin() + 128);
				}
			}
			break;
		default:
			for (auto &kv : m)
				if (!valid(kv.second))
					return 0;
		}
	}
	uint64_t sum = 0;
	for (auto &kv : m)
		sum = mix(sum ^ kv.second->id ^ std::hash<std::string>()(kv.first));
	return sum;
}

/* Does @p lie in a mapping of /dev/pyalloc? */
bool in_device(const void *p)
{
	std::ifstream maps("/proc/self/maps");
	std::string line;
	uintptr_t a = (uintptr_t)p;

	while (std::getline(maps, line)) {
		unsigned long lo, hi;
		if (line.find("/dev/pyalloc") == std::string::npos)
			continue;
		if (sscanf(line.c_str(), "%lx-%lx", &lo, &hi) == 2 && a >= lo && a < hi)
			return true;
	}
	return false;
}

} // namespace

int main()
{
	const char *e = getenv("PYALLOC_EXPECT");
	const bool expect = e && !strcmp(e, "1");
	std::map<std::string, std::shared_ptr<Obj>> mine;
	uint64_t sums[4] = {};
	std::vector<std::thread> threads;

	for (int t = 0; t < 4; t++)
		threads.emplace_back([t, &sums] {
			std::map<std::string, std::shared_ptr<Obj>> m;
			sums[t] = churn(m, 100 + t, 20000, true);
		});

	uint64_t before = churn(mine, 7, 5000, false);
	std::vector<int> pids;
	for (int f = 0; f < 4; f++) {
		pid_t pid = fork();
		if (pid < 0)
			return 2;
		if (pid == 0) {
			/* The child's own copy: check it, churn it, report. */
			for (auto &kv : mine)
				if (!valid(kv.second))
					_exit(3);
			uint64_t s = churn(mine, 1000 + f, 5000, false);
			mine.clear();
			_exit(s ? 0 : 4);
		}
		pids.push_back(pid);
	}
	for (int pid : pids) {
		int st;
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st)) {
			fprintf(stderr, "child %d failed: %#x\n", pid, st);
			return 5;
		}
	}
	uint64_t again = 0;
	for (auto &kv : mine)
		again = mix(again ^ kv.second->id ^ std::hash<std::string>()(kv.first));
	for (auto &th : threads)
		th.join();

	std::string probe(40, 'p');
	auto sp = std::make_shared<int>(42);
	bool dev = in_device(probe.data()) && in_device(sp.get());
	printf("main map: %zu entries, checksum %016" PRIx64 " (unchanged by children: %s)\n",
	       mine.size(), before, before == again ? "yes" : "NO");
	for (int t = 0; t < 4; t++)
		printf("thread %d checksum %016" PRIx64 "\n", t, sums[t]);
	printf("queue: %zu shared objects\n", queue.size());
	if (expect != dev) {
		fprintf(stderr, "PROOF FAILED: small blocks %s /dev/pyalloc\n",
			dev ? "in" : "not in");
		return 6;
	}
	fprintf(stderr, "PROOF: std::string and shared_ptr blocks %s /dev/pyalloc\n",
		dev ? "in" : "not in");
	return before == again ? 0 : 7;
}
