// The kernels' working memory: one pool for the whole extension, bounded by a budget.
//
// A kernel leases one block per call, sized by its plan for all its threads, and carves its
// named regions out of it; the lease returns the block to the pool, which keeps idle blocks
// for the next call (reused memory needs no fresh pages faulted in) as long as everything it
// holds fits the budget, and frees the rest. So memory held between calls never exceeds the
// budget, whatever the largest call was; a call that needs more is served, then trimmed back.
// Compiled once, for the baseline: every CPU level's kernels share the pool.
#pragma once

#include <cstddef>

namespace dlx {

class WorkspaceLease {
 public:
  explicit WorkspaceLease(std::size_t bytes);
  ~WorkspaceLease();
  WorkspaceLease(const WorkspaceLease&) = delete;
  WorkspaceLease& operator=(const WorkspaceLease&) = delete;

  // The block as an array of T (64-byte aligned), at least `bytes` long.
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }

 private:
  void* data_;
  std::size_t size_;
};

// Bytes the pool may keep between calls (DLX_WORKSPACE_MB, read by dlx.ops, sets it).
std::size_t workspace_budget();
void set_workspace_budget(std::size_t bytes);
// Bytes the pool holds now, idle and leased.
std::size_t workspace_bytes();
// Frees every idle block.
void release_workspace();

}  // namespace dlx
