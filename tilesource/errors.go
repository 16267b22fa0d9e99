package tilesource

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is the one error type the API understands: an HTTP status, a message
// that is safe to show to clients, and an optional cause kept for the log.
// Messages never carry file paths or stack traces.
type Error struct {
	Status  int
	Message string
	// Type is Girder's error "type" field: "rest" (default) or "validation".
	Type string
	// Field names the offending parameter for validation errors.
	Field string
	Cause error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Message + ": " + e.Cause.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Cause }

// BadRequest returns a 400 error with a public message.
func BadRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

// NotFound returns a 404 error with a public message.
func NotFound(format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, Message: fmt.Sprintf(format, args...)}
}

// Errorf returns an error with the given status and public message.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// WithStatus returns a copy of err's public error with another status; other
// errors become a public error with that status and a generic message.
func WithStatus(err error, status int) *Error {
	var e *Error
	if errors.As(err, &e) {
		c := *e
		c.Status = status
		return &c
	}
	return &Error{Status: status, Message: "Internal I/O failure", Cause: err}
}

// Sentinel causes that readers return and the pipeline reacts to.
var (
	// ErrLevelNotStored is returned by Source.ReadTile for a level the file
	// does not store; the pipeline synthesises it from a finer level.
	ErrLevelNotStored = errors.New("level not stored")
	// ErrNotRecognized is returned by an opener that does not claim a file,
	// so that detection tries the next one.
	ErrNotRecognized = errors.New("format not recognized")
	// ErrDamaged is wrapped by an opener that recognised the file's format
	// but found its structure broken (sizes, offsets, directories that
	// contradict each other): detection then refuses the file instead of
	// handing it to a C library that may crash on it.
	ErrDamaged = errors.New("damaged file")
)

// Range errors with large_image's messages (TileSource's level geometry).
var (
	ErrZRange     = NotFound("z layer does not exist")
	ErrXRange     = NotFound("x is outside layer")
	ErrYRange     = NotFound("y is outside layer")
	ErrFrameRange = NotFound("Frame does not exist")
)
