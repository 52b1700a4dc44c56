#include "workspace.h"

#include <algorithm>
#include <mutex>
#include <new>
#include <vector>

namespace dlx {
namespace {

constexpr std::size_t kAlignment = 4096;  // a page: each thread's part of a block starts on its own

struct Block {
  void* data;
  std::size_t size;
};

struct Pool {
  std::mutex mutex;
  std::vector<Block> idle;
  std::size_t held = 0;  // idle and leased
  std::size_t budget = std::size_t(256) << 20;

  // Frees idle blocks, largest first, until what is held fits the budget. Caller holds mutex.
  void trim() {
    std::sort(idle.begin(), idle.end(), [](const Block& a, const Block& b) { return a.size < b.size; });
    while (!idle.empty() && held > budget) {
      free(idle.back());
      idle.pop_back();
    }
  }

  void free(const Block& block) {
    ::operator delete(block.data, std::align_val_t(kAlignment));
    held -= block.size;
  }
};

Pool& pool() {
  static Pool* instance = new Pool;  // never destroyed: leases may end during interpreter exit
  return *instance;
}

}  // namespace

WorkspaceLease::WorkspaceLease(std::size_t bytes) : data_(nullptr), size_(0) {
  if (bytes == 0) return;
  Pool& p = pool();
  {
    std::lock_guard<std::mutex> lock(p.mutex);
    // The smallest idle block that is large enough.
    auto best = p.idle.end();
    for (auto it = p.idle.begin(); it != p.idle.end(); ++it) {
      if (it->size >= bytes && (best == p.idle.end() || it->size < best->size)) best = it;
    }
    if (best != p.idle.end()) {
      data_ = best->data;
      size_ = best->size;
      p.idle.erase(best);
      return;
    }
    // None fits: make room within the budget before allocating.
    while (!p.idle.empty() && p.held + bytes > p.budget) {
      p.free(p.idle.back());
      p.idle.pop_back();
    }
  }
  size_ = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  data_ = ::operator new(size_, std::align_val_t(kAlignment));  // throws std::bad_alloc
  std::lock_guard<std::mutex> lock(p.mutex);
  p.held += size_;
}

WorkspaceLease::~WorkspaceLease() {
  if (!data_) return;
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mutex);
  p.idle.push_back(Block{data_, size_});
  p.trim();
}

std::size_t workspace_budget() {
  std::lock_guard<std::mutex> lock(pool().mutex);
  return pool().budget;
}

void set_workspace_budget(std::size_t bytes) {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mutex);
  p.budget = bytes;
  p.trim();
}

std::size_t workspace_bytes() {
  std::lock_guard<std::mutex> lock(pool().mutex);
  return pool().held;
}

void release_workspace() {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mutex);
  for (const Block& block : p.idle) p.free(block);
  p.idle.clear();
}

}  // namespace dlx
