package replay

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// IsTerminal reports whether f is a character device (a terminal), so a
// progress bar would be seen rather than pollute a log file.
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressDelay keeps short runs quiet.
const progressDelay = 2 * time.Second

// startProgress draws a bar on w once the run has lasted progressDelay;
// the returned function stops it and clears the line. total is the
// expected request count when the run has no time limit.
func startProgress(w io.Writer, r *runner, o Options, total int) func() {
	if w == nil {
		return func() {}
	}
	if o.MaxRequests > 0 && (total == 0 || o.Duration > 0 || o.MaxRequests < total) {
		total = o.MaxRequests
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		drawn := false
		for {
			select {
			case <-stop:
				if drawn {
					fmt.Fprint(w, "\r\033[K")
				}
				return
			case <-tick.C:
			}
			el := time.Since(r.start)
			if el < progressDelay {
				continue
			}
			done := r.done.Load()
			frac := 0.0
			switch {
			case o.Duration > 0:
				frac = float64(el) / float64(o.Duration)
				if o.MaxRequests > 0 {
					frac = max(frac, float64(done)/float64(o.MaxRequests))
				}
			case total > 0:
				frac = float64(done) / float64(total)
			}
			fmt.Fprint(w, "\r"+bar(frac, 30)+fmt.Sprintf(" %3.0f%% %d req %.0f req/s %s",
				100*min(frac, 1), done, float64(done)/el.Seconds(), el.Truncate(time.Second)))
			drawn = true
		}
	}()
	return func() { close(stop); wg.Wait() }
}

func bar(frac float64, width int) string {
	n := int(min(max(frac, 0), 1) * float64(width))
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}
