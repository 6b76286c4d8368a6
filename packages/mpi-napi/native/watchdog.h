// The collective timeout, as NCCL's watchdog: a rank that has waited longer than the timeout
// in a blocking MPI call (a collective, a receive, a wait on a request) prints which
// operation and which peer ranks it waits for, then exits, which ends the job. Without it, a
// stalled or unreachable rank leaves every other rank waiting (and spinning at full CPU, as
// MPI polls) for ever.
//
// The blocking call itself is unchanged (MPI's own, fastest path): the main thread only marks
// "waiting in X for Y" before it and "done" after it, two stores, and a thread of the addon
// looks at that mark a few times per timeout. That thread never calls MPI (which we
// initialize for the main thread only); it writes its message and calls _exit.
#pragma once

#include <atomic>
#include <string>
#include <vector>

namespace mpinapi {

// The world ranks of a communicator's members, in its own rank order. Kept for the life of
// the process (a few per job), so the watchdog may read them whatever the main thread does.
using Members = std::vector<int>;
const Members* KeepMembers(Members members);

// What a blocking call waits for: `peers` are ranks of the communicator whose members are
// `members`; -1 leaves a slot unused, and both unused means every other member (a collective).
struct Waiting {
  const char* operation;
  const Members* members;
  int peers[2];
};

// After MPI_Init: this process's world rank and every world rank's host name.
void StartWatchdog(int worldRank, std::vector<std::string> hosts);
// 0 turns it off.
void SetCollectiveTimeout(double seconds);
double CollectiveTimeout();

// Marks the main thread as waiting in `what` for as long as it lives (on the stack, around one
// blocking MPI call; it keeps its own copy of `what`).
class Watch {
 public:
  explicit Watch(const Waiting& what);
  ~Watch();
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;

 private:
  Waiting what_;
};

}  // namespace mpinapi
