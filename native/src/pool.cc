#include "pool.h"

#include <chrono>
#include <memory>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MM_PAUSE() _mm_pause()
#else
#define MM_PAUSE() std::this_thread::yield()
#endif

#ifndef MM_SPIN_US
#define MM_SPIN_US 300
#endif

namespace mm {

Pool::Pool(int threads) {
  for (int i = 1; i < threads; i++) workers_.emplace_back([this, i] { work(i); });
}

Pool::~Pool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

int Pool::drain(Job& job) {
  int done = 0;
  for (;;) {
    int t = job.next.fetch_add(1);
    if (t >= job.tasks) break;
    (*job.fn)(t);
    job.pending.fetch_sub(1);
    done++;
  }
  return done;
}

void Pool::run(int tasks, const std::function<void(int)>& fn) {
  if (tasks <= 0) return;
  if (tasks == 1 || workers_.empty()) {
    for (int t = 0; t < tasks; t++) fn(t);
    return;
  }
  Job job;
  job.fn = &fn;
  job.tasks = tasks;
  job.pending.store(tasks);
  current_.store(&job);
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  drain(job);
  while (job.pending.load() > 0) MM_PAUSE();
  current_.store(nullptr);
  while (inside_.load() > 0) MM_PAUSE();
}

void Pool::work(int) {
  unsigned seen = generation_.load();
  for (;;) {
    // Spin for a short while: the next job usually follows within microseconds.
    auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(MM_SPIN_US);
    unsigned g;
    int spins = 0;
    while ((g = generation_.load(std::memory_order_acquire)) == seen) {
      MM_PAUSE();
      if (++spins % 64 == 0 && std::chrono::steady_clock::now() > until) {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return generation_.load() != seen; });
      }
    }
    seen = g;
    if (stop_.load()) return;
    inside_.fetch_add(1);
    if (Job* job = current_.load()) worker_tasks_.fetch_add(drain(*job));
    inside_.fetch_sub(1);
  }
}

static int g_threads = 0;
static std::unique_ptr<Pool> g_pool;

void set_threads(int n) {
  if (n < 1) n = 1;
  if (g_pool && g_pool->threads() == n) return;
  g_pool.reset();
  g_threads = n;
}

int configured_threads() {
  if (g_threads > 0) return g_threads;
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

long long worker_tasks() { return g_pool ? g_pool->worker_tasks() : 0; }

Pool& pool() {
  if (!g_pool) g_pool = std::make_unique<Pool>(configured_threads());
  return *g_pool;
}

}  // namespace mm
