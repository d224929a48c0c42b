// tpflax's host block cache: large freed buffers of XLA:CPU kept for its next allocations.
//
// XLA:CPU allocates each program's temporaries and outputs with posix_memalign and releases
// them with free, every call. glibc serves a large block with mmap and unmaps it on free, so
// each call faults every page of it in again and the kernel zeroes each page (a ResNet-50
// training step at batch 8: 990 MB of temporaries, 252,000 page faults, 0.6 s of system
// time). TensorFlow keeps such blocks in its own allocator.
//
// tpflax_host_blocks_install(library, min_block, capacity) points one loaded library's
// relocations of posix_memalign and free (its PLT slots, GOT entries and stored function
// pointers) at the two functions below:
//   * CachedFree: a block glibc mapped for itself (mmap, so free would unmap it) of at least
//     `min_block` usable bytes is kept, while the kept bytes stay within `capacity` (the
//     oldest kept blocks are released past it); anything else goes to glibc's free.
//   * CachedMemalign: a request of at least `min_block` bytes takes the kept block with the
//     least usable space that holds it, is aligned as asked and wastes at most half of it;
//     else glibc's posix_memalign.
// Every block stays one glibc allocated, so a pointer that reaches glibc's free some other
// way (a copy of `free` taken before the install) is still released correctly. Only the named
// library is changed. glibc only (the chunk's IS_MMAPPED bit, malloc_usable_size); x86-64.
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <malloc.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <mutex>

namespace {

size_t g_min_block = 1 << 20;
size_t g_capacity = 0;
std::atomic<bool> g_enabled{true};
std::atomic<uint64_t> g_hits{0}, g_misses{0};

struct Cache {
  std::mutex mu;
  std::multimap<size_t, void*> by_size;  // usable bytes -> block
  std::list<void*> by_age;               // newest first
  size_t bytes = 0;
};

Cache& TheCache() {
  // never destroyed (frees may arrive during exit); its lock is held across fork(), so a
  // child never inherits it locked by a thread that no longer exists
  static Cache* cache = [] {
    auto* c = new Cache;
    pthread_atfork([] { TheCache().mu.lock(); }, [] { TheCache().mu.unlock(); },
                   [] { TheCache().mu.unlock(); });
    return c;
  }();
  return *cache;
}

void Forget(Cache& c, std::multimap<size_t, void*>::iterator it) {
  c.bytes -= it->first;
  c.by_age.remove(it->second);
  c.by_size.erase(it);
}

int CachedMemalign(void** out, size_t alignment, size_t size) {
  const bool power_of_two = alignment != 0 && (alignment & (alignment - 1)) == 0;
  if (size >= g_min_block && power_of_two && g_enabled.load(std::memory_order_relaxed)) {
    Cache& c = TheCache();
    std::lock_guard<std::mutex> lock(c.mu);
    for (auto it = c.by_size.lower_bound(size); it != c.by_size.end() && it->first <= 2 * size;
         ++it) {
      if (reinterpret_cast<uintptr_t>(it->second) % alignment == 0) {
        *out = it->second;
        Forget(c, it);
        g_hits.fetch_add(1, std::memory_order_relaxed);
        return 0;
      }
    }
    g_misses.fetch_add(1, std::memory_order_relaxed);
  }
  return posix_memalign(out, alignment, size);
}

// Whether glibc serves this block with its own mapping (the IS_MMAPPED bit of the chunk's
// size word, just before the block): only those are unmapped on free. Heap blocks are
// reused by glibc itself; keeping them would only fragment its arenas.
bool Mapped(void* block) { return (static_cast<const size_t*>(block)[-1] & 0x2) != 0; }

void CachedFree(void* block) {
  if (block != nullptr && Mapped(block) && g_enabled.load(std::memory_order_relaxed)) {
    const size_t usable = malloc_usable_size(block);
    if (usable >= g_min_block && usable <= g_capacity) {
      Cache& c = TheCache();
      std::lock_guard<std::mutex> lock(c.mu);
      c.by_size.emplace(usable, block);
      c.by_age.push_front(block);
      c.bytes += usable;
      while (c.bytes > g_capacity) {  // release the oldest
        void* oldest = c.by_age.back();
        c.by_age.pop_back();
        auto range = c.by_size.equal_range(malloc_usable_size(oldest));
        for (auto it = range.first; it != range.second; ++it) {
          if (it->second == oldest) {
            c.bytes -= it->first;
            c.by_size.erase(it);
            break;
          }
        }
        free(oldest);
      }
      return;
    }
  }
  free(block);
}

struct Target {
  const char* library;
  int patched = 0;
};

uintptr_t Absolute(uintptr_t base, uintptr_t address) {
  return address < base ? base + address : address;  // ld.so may have relocated it in place
}

// Rewrites every relocation of posix_memalign and free in one loaded object.
int Patch(struct dl_phdr_info* info, size_t, void* data) {
  auto* target = static_cast<Target*>(data);
  if (info->dlpi_name == nullptr || strstr(info->dlpi_name, target->library) == nullptr) return 0;
  const uintptr_t base = info->dlpi_addr;
  const ElfW(Dyn)* dyn = nullptr;
  uintptr_t relro_start = 0, relro_end = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_DYNAMIC) dyn = reinterpret_cast<const ElfW(Dyn)*>(base + ph.p_vaddr);
    if (ph.p_type == PT_GNU_RELRO) {
      // ld.so protects whole pages only: the partial page at the end stays writable
      const uintptr_t page_mask = ~static_cast<uintptr_t>(sysconf(_SC_PAGESIZE) - 1);
      relro_start = (base + ph.p_vaddr) & page_mask;
      relro_end = (base + ph.p_vaddr + ph.p_memsz) & page_mask;
    }
  }
  if (dyn == nullptr) return 0;
  uintptr_t symtab = 0, strtab = 0, rela = 0, jmprel = 0;
  size_t rela_size = 0, jmprel_size = 0;
  for (; dyn->d_tag != DT_NULL; ++dyn) {
    switch (dyn->d_tag) {
      case DT_SYMTAB: symtab = Absolute(base, dyn->d_un.d_ptr); break;
      case DT_STRTAB: strtab = Absolute(base, dyn->d_un.d_ptr); break;
      case DT_RELA: rela = Absolute(base, dyn->d_un.d_ptr); break;
      case DT_RELASZ: rela_size = dyn->d_un.d_val; break;
      case DT_JMPREL: jmprel = Absolute(base, dyn->d_un.d_ptr); break;
      case DT_PLTRELSZ: jmprel_size = dyn->d_un.d_val; break;
    }
  }
  if (symtab == 0 || strtab == 0) return 0;
  const long page = sysconf(_SC_PAGESIZE);
  const std::pair<uintptr_t, size_t> tables[] = {{rela, rela_size}, {jmprel, jmprel_size}};
  for (const auto& [table, size] : tables) {
    const auto* r = reinterpret_cast<const ElfW(Rela)*>(table);
    for (size_t i = 0; table != 0 && i < size / sizeof(ElfW(Rela)); ++i) {
      const auto type = ELF64_R_TYPE(r[i].r_info);
      if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT && type != R_X86_64_64) {
        continue;
      }
      const auto* sym = reinterpret_cast<const ElfW(Sym)*>(symtab) + ELF64_R_SYM(r[i].r_info);
      const char* name = reinterpret_cast<const char*>(strtab) + sym->st_name;
      void* replacement = nullptr;
      if (strcmp(name, "posix_memalign") == 0) replacement = reinterpret_cast<void*>(CachedMemalign);
      if (strcmp(name, "free") == 0) replacement = reinterpret_cast<void*>(CachedFree);
      if (replacement == nullptr || r[i].r_addend != 0) continue;
      const uintptr_t address = base + r[i].r_offset;
      auto* slot = reinterpret_cast<void**>(address);
      // A slot in RELRO is read-only after relocation: its page is opened for the write
      // and closed again.
      const bool relro = address >= relro_start && address < relro_end;
      auto* start = reinterpret_cast<void*>(address & ~static_cast<uintptr_t>(page - 1));
      if (relro && mprotect(start, page, PROT_READ | PROT_WRITE) != 0) return -1;
      __atomic_store_n(slot, replacement, __ATOMIC_SEQ_CST);
      if (relro) mprotect(start, page, PROT_READ);
      ++target->patched;
    }
  }
  return 1;
}

}  // namespace

// Installs the cache in the loaded library whose path contains `library`; returns how many
// relocations now point at it (0: none found, -1: a RELRO page could not be made writable).
extern "C" int tpflax_host_blocks_install(const char* library, size_t min_block,
                                          size_t capacity) {
  g_min_block = min_block;
  g_capacity = capacity;
  Target target{library};
  const int found = dl_iterate_phdr(Patch, &target);
  return found < 0 ? -1 : target.patched;
}

// Turns the cache on or off (off releases every kept block): for benchmarks that compare the
// two in one process.
extern "C" void tpflax_host_blocks_enable(int on) {
  g_enabled.store(on != 0);
  if (on) return;
  Cache& c = TheCache();
  std::lock_guard<std::mutex> lock(c.mu);
  for (auto& entry : c.by_size) free(entry.second);
  c.by_size.clear();
  c.by_age.clear();
  c.bytes = 0;
}

// Hits and misses of large requests so far, and the bytes kept now.
extern "C" void tpflax_host_blocks_stats(uint64_t* hits, uint64_t* misses, uint64_t* kept) {
  *hits = g_hits.load();
  *misses = g_misses.load();
  std::lock_guard<std::mutex> lock(TheCache().mu);
  *kept = TheCache().bytes;
}
