package tilesource

import "sort"

// SortedNames returns the keys of m sorted, as an empty (not nil) slice
// when m is empty: AssociatedNames of the sources that index their
// associated images by name.
func SortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
