package modal

import "fmt"

// InvalidError reports a bad argument to an Image method, as Modal's
// modal.exception.InvalidError does. Message follows Modal's wording where
// Modal has one.
type InvalidError struct {
	Method  string // the Image method, e.g. "apt_install"
	Message string
}

func (e *InvalidError) Error() string {
	if e.Method == "" {
		return e.Message
	}
	return e.Method + ": " + e.Message
}

func Invalidf(method, format string, args ...any) error {
	return &InvalidError{Method: method, Message: fmt.Sprintf(format, args...)}
}
