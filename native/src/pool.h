// A tiny fork-join pool: the calling thread plus (threads - 1) workers run `fn(task)` for every task
// index of one job, then the call returns. Workers spin briefly before sleeping, because a decode step
// makes hundreds of short calls and a condition-variable wake-up costs tens of microseconds each.
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace mm {

class Pool {
 public:
  explicit Pool(int threads);
  ~Pool();
  int threads() const { return static_cast<int>(workers_.size()) + 1; }
  // Tasks run by worker threads (not the caller) since the pool started: a diagnostic that shows
  // whether the other cores are really taking part.
  long long worker_tasks() const { return worker_tasks_.load(); }
  // Runs fn(0..tasks-1) across the pool; returns when all are done. Not re-entrant.
  void run(int tasks, const std::function<void(int)>& fn);

 private:
  void work(int id);
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  struct Job {
    const std::function<void(int)>* fn;
    int tasks;
    std::atomic<int> next{0};
    std::atomic<int> pending{0};
  };
  int drain(Job& job);
  std::atomic<unsigned> generation_{0};
  std::atomic<Job*> current_{nullptr};
  // Workers between picking up `current_` and finishing with it; run() waits for zero before its
  // job leaves scope. A sleeping worker never counts, so the caller never waits for a wake-up.
  std::atomic<int> inside_{0};
  std::atomic<long long> worker_tasks_{0};
  std::atomic<bool> stop_{false};
};

// The process-wide pool (created on first use with the configured thread count).
Pool& pool();
// Sets the thread count for the pool created next (call before the first kernel runs).
void set_threads(int n);
int configured_threads();
// Tasks the current pool's workers have run (0 before the pool exists).
long long worker_tasks();

}  // namespace mm
