#include "block/qcow2/metadata_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "block/test_util.h"

namespace kumo::block::qcow2 {
namespace {

using kumo::block::testing::ScratchDir;

constexpr uint64_t kTable = 4096;

// A file of `tables` tables; table i is filled with byte i + 1.
HostFile make_tables(const ScratchDir& dir, size_t tables) {
  const std::string p = dir.file("meta");
  HostFile f = *HostFile::create(p);
  for (size_t i = 0; i < tables; ++i) {
    std::vector<uint8_t> t(kTable, static_cast<uint8_t>(i + 1));
    EXPECT_TRUE(f.pwrite_full(i * kTable, t));
  }
  return f;
}

uint8_t byte_at(HostFile& f, uint64_t offset) {
  uint8_t b = 0;
  EXPECT_TRUE(f.pread_full(offset, std::span<uint8_t>(&b, 1)));
  return b;
}

TEST(MetadataCache, HitServesTheCachedTableWithoutRereading) {
  ScratchDir dir;
  HostFile f = make_tables(dir, 2);
  MetadataCache cache(&f, kTable, 2);
  ASSERT_EQ((*cache.get(kTable))[0], 2);
  std::vector<uint8_t> other(kTable, 0x77);
  ASSERT_TRUE(f.pwrite_full(kTable, other));  // behind the cache's back
  EXPECT_EQ((*cache.get(0))[0], 1);
  EXPECT_EQ((*cache.get(kTable))[0], 2);
}

TEST(MetadataCache, LeastRecentlyUsedTableIsEvictedAndWrittenBackWhenDirty) {
  ScratchDir dir;
  HostFile f = make_tables(dir, 4);
  MetadataCache cache(&f, kTable, 2);
  uint8_t* a = *cache.get(0);
  a[0] = 0xaa;
  cache.mark_dirty(0);
  ASSERT_TRUE(cache.get(kTable));
  ASSERT_TRUE(cache.get(0));             // table 0 is now the most recently used
  ASSERT_TRUE(cache.get(2 * kTable));    // evicts table 1 (clean)
  EXPECT_EQ(byte_at(f, 0), 1);           // table 0 still only in the cache
  ASSERT_TRUE(cache.get(3 * kTable));    // evicts table 0 (dirty): written back
  EXPECT_EQ(byte_at(f, 0), 0xaa);
  EXPECT_FALSE(cache.has_dirty());
  EXPECT_EQ((*cache.get(0))[0], 0xaa);   // read again from the file
}

TEST(MetadataCache, EvictionReusesTheEvictedTablesMemory) {
  ScratchDir dir;
  HostFile f = make_tables(dir, 3);
  MetadataCache cache(&f, kTable, 2);
  const uint8_t* first = *cache.get(0);
  ASSERT_TRUE(cache.get(kTable));
  const uint8_t* third = *cache.get(2 * kTable);
  EXPECT_EQ(third, first);  // no allocation once the cache is full
  EXPECT_EQ(third[0], 3);
}

TEST(MetadataCache, TablesOfTheSameRecentSlotAreBothFound) {
  ScratchDir dir;
  HostFile f = make_tables(dir, 17);
  MetadataCache cache(&f, kTable, 4);
  // Tables 0, 8 and 16 share a direct-mapped slot.
  for (int round = 0; round < 2; ++round) {
    EXPECT_EQ((*cache.get(0))[0], 1);
    EXPECT_EQ((*cache.get(8 * kTable))[0], 9);
    EXPECT_EQ((*cache.get(16 * kTable))[0], 17);
  }
}

TEST(MetadataCache, EvictedOrDiscardedTableIsReadAgain) {
  ScratchDir dir;
  HostFile f = make_tables(dir, 3);
  MetadataCache cache(&f, kTable, 2);
  uint8_t* t0 = *cache.get(0);
  t0[1] = 0x55;  // a change that is not marked dirty: lost when the table is dropped
  ASSERT_TRUE(cache.get(kTable));
  ASSERT_TRUE(cache.get(2 * kTable));  // evicts table 0; its node now holds table 2
  EXPECT_EQ((*cache.get(0))[1], 1);
  cache.discard(0);
  EXPECT_EQ((*cache.get(0))[1], 1);
}

TEST(MetadataCache, FreshTableIsZeroedDirtyAndWrittenAfterTheBarrier) {
  ScratchDir dir;
  HostFile f = make_tables(dir, 3);
  MetadataCache cache(&f, kTable, 2);
  int barriers = 0;
  cache.set_barrier([&] {
    ++barriers;
    return Status{};
  });
  ASSERT_TRUE(cache.get(0));
  ASSERT_TRUE(cache.get(kTable));
  uint8_t* fresh = *cache.get_fresh(2 * kTable);  // evicts table 0, reusing its memory
  EXPECT_EQ(std::count(fresh, fresh + kTable, 0), static_cast<long>(kTable));
  EXPECT_TRUE(cache.has_dirty());
  EXPECT_EQ(byte_at(f, 2 * kTable), 3);
  ASSERT_TRUE(cache.flush());
  EXPECT_EQ(barriers, 1);
  EXPECT_EQ(byte_at(f, 2 * kTable), 0);
  EXPECT_FALSE(cache.has_dirty());
}

}  // namespace
}  // namespace kumo::block::qcow2
