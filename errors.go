package snapbuild

import (
	"github.com/snapbuild/snapbuild/internal/engine"
	"github.com/snapbuild/snapbuild/internal/modal"
)

// InvalidError reports a bad argument to an Image method, as Modal's
// modal.exception.InvalidError does: Method is the Image method (e.g.
// "apt_install"), Message follows Modal's wording where Modal has one.
type InvalidError = modal.InvalidError

// StoreNotExistError is NewBuilder's error when the directory given to
// WithExistingRoot does not exist.
type StoreNotExistError = engine.StoreNotExistError

// NameTakenError is returned by Builder.TagResultWith when the name names
// another image, from another source, and TagOptions.Replace is not set: a
// build never silently takes a name that another project's build gave.
type NameTakenError = engine.NameTakenError

// StepError reports a build step whose process exited with a non-zero status.
type StepError = engine.StepError

// ErrNeedsSandbox is wrapped by the errors of a Builder made WithoutSandbox
// where a build, run, pull or metadata probe would need the build namespace
// (a step to run, a snapshot to mount, a base to pull or bootstrap). The
// call recorded nothing (see WithoutSandbox). Test it with errors.Is, then
// call sandbox.EnterNamespace and try again.
var ErrNeedsSandbox = engine.ErrNeedsSandbox
