package tilecache

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/shirou/gopsutil/v4/mem"
)

const fallbackMemory = 8 << 30

var totalMemory = sync.OnceValue(func() int64 {
	total := int64(0)
	if vm, err := mem.VirtualMemory(); err == nil {
		total = int64(vm.Total)
	}
	// A container limit smaller than the host's memory is what we really
	// have; the range check ignores "unlimited" sentinels (as large_image).
	if lim := cgroupLimit(); lim >= 1<<30 && lim < 1<<40 && (total == 0 || lim < total) {
		total = lim
	}
	if total <= 0 {
		total = fallbackMemory
	}
	return total
})

// TotalMemory returns the memory the process may use: total RAM from
// gopsutil, lowered to a cgroup (v1 or v2) limit when one applies, or 8 GiB
// when neither is known.
func TotalMemory() int64 { return totalMemory() }

func cgroupLimit() int64 {
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err == nil && v > 0 {
			return v
		}
	}
	return 0
}

// OpenFileLimit returns the soft RLIMIT_NOFILE (Go raises it to the hard
// limit at start-up on Linux), or 1024 when it cannot be read.
func OpenFileLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return 1024
	}
	if rl.Cur > 1<<20 {
		return 1 << 20
	}
	return int(rl.Cur)
}
