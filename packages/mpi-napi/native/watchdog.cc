#include "watchdog.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <thread>

namespace mpinapi {
namespace {

using Clock = std::chrono::steady_clock;

// Written by the main thread only. `sequence` is odd while it waits; the watchdog takes a
// wait that keeps the same odd value across its looks as one long wait.
std::atomic<const Waiting*> current{nullptr};
std::atomic<uint64_t> sequence{0};
std::atomic<double> timeoutSeconds{300};

int selfRank = 0;
std::vector<std::string> hostNames;  // by world rank; set before the thread starts

std::mutex keptMutex;
std::vector<const Members*> kept;  // never freed: see KeepMembers

std::string HostOf(int worldRank) {
  if (worldRank >= 0 && static_cast<size_t>(worldRank) < hostNames.size()) return hostNames[worldRank];
  return "?";
}

// "rank 1 on hostB" (a receive, send or wait) or "any of ranks 1 on hostA, 2 on hostB" (a
// collective: MPI does not say which of them has not arrived), at most 16 of them.
std::string DescribePeers(const Waiting& what) {
  std::vector<int> peers;
  const Members& members = *what.members;
  auto add = [&](int commRank) {
    if (commRank < 0 || static_cast<size_t>(commRank) >= members.size()) return;
    int world = members[commRank];
    if (world != selfRank && std::find(peers.begin(), peers.end(), world) == peers.end()) peers.push_back(world);
  };
  if (what.peers[0] < 0 && what.peers[1] < 0) {  // a collective
    for (size_t i = 0; i < members.size(); ++i) add(static_cast<int>(i));
  } else {
    add(what.peers[0]);
    add(what.peers[1]);
  }
  if (peers.empty()) return "no other rank";
  bool collective = what.peers[0] < 0 && what.peers[1] < 0;
  std::string text = peers.size() == 1 ? "rank " : collective ? "any of ranks " : "ranks ";
  size_t shown = std::min<size_t>(peers.size(), 16);
  for (size_t i = 0; i < shown; ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(peers[i]) + " on " + HostOf(peers[i]);
  }
  if (shown < peers.size()) text += " and " + std::to_string(peers.size() - shown) + " more";
  return text;
}

// 3, 2.5 or 0.25: as few digits as the number needs, up to three decimals.
std::string Seconds(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3f", seconds);
  std::string s = text;
  s.erase(s.find_last_not_of('0') + 1);
  if (s.back() == '.') s.pop_back();
  return s;
}

[[noreturn]] void Fire(const std::string& message) {
  // One write, so that the line does not interleave with other output; then the job ends:
  // mpirun sees a rank exit with an error and stops the others.
  std::string line = message + "\n";
  ssize_t ignored = write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
  _exit(1);
}

void Run() {
  uint64_t seen = 0;
  Clock::time_point since = Clock::now();
  for (;;) {
    double timeout = timeoutSeconds.load(std::memory_order_relaxed);
    // Looks about 20 times per timeout, at most once per second: the wait is known to within
    // a twentieth of the timeout, and an idle watchdog costs nothing.
    double period = timeout > 0 ? std::clamp(timeout / 20, 0.01, 1.0) : 1.0;
    std::this_thread::sleep_for(std::chrono::duration<double>(period));
    uint64_t now = sequence.load(std::memory_order_acquire);
    if ((now & 1) == 0 || now != seen) {
      seen = now;
      since = Clock::now();
      continue;
    }
    double waited = std::chrono::duration<double>(Clock::now() - since).count();
    if (timeout <= 0 || waited < timeout) continue;
    const Waiting* what = current.load(std::memory_order_acquire);
    if (what == nullptr) continue;
    std::string message = "[rank " + std::to_string(selfRank) + " on " + HostOf(selfRank) +
                          "] collective timeout: " + what->operation + " has waited " + Seconds(waited) +
                          " s for " + DescribePeers(*what) + " (limit " + Seconds(timeout) +
                          " s, PICOTRON_COLLECTIVE_TIMEOUT); ending the job";
    // The wait may have ended while the message was put together; then it was not a stall.
    if (sequence.load(std::memory_order_acquire) != now) continue;
    Fire(message);
  }
}

}  // namespace

const Members* KeepMembers(Members members) {
  std::lock_guard<std::mutex> lock(keptMutex);
  kept.push_back(new Members(std::move(members)));
  return kept.back();
}

void StartWatchdog(int worldRank, std::vector<std::string> hosts) {
  selfRank = worldRank;
  hostNames = std::move(hosts);
  std::thread(Run).detach();  // sleeps when idle; ends with the process
}

void SetCollectiveTimeout(double seconds) { timeoutSeconds.store(seconds, std::memory_order_relaxed); }

double CollectiveTimeout() { return timeoutSeconds.load(std::memory_order_relaxed); }

Watch::Watch(const Waiting& what) : what_(what) {
  current.store(&what_, std::memory_order_relaxed);
  sequence.store(sequence.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

Watch::~Watch() {
  sequence.store(sequence.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

}  // namespace mpinapi
