package main

import (
	"flag"
	"os"

	"github.com/snapbuild/snapbuild"
)

// builderFlags are build's --builder and buildctl's TLS flags.
type builderFlags struct {
	addr                          *string
	caCert, cert, key, serverName *string
}

func addBuilderFlags(fs *flag.FlagSet) *builderFlags {
	return &builderFlags{
		addr:       fs.String("builder", os.Getenv("SNAPBUILD_BUILDER"), "build every step on the BuildKit daemon at `ADDR`: buildkit://unix:///PATH/buildkitd.sock or buildkit://tcp://HOST:PORT (default $SNAPBUILD_BUILDER; see docs/buildkit.md)"),
		caCert:     fs.String("tlscacert", "", "with --builder: CA certificate `FILE` that verifies buildkitd's, as buildctl --tlscacert"),
		cert:       fs.String("tlscert", "", "with --builder: client certificate `FILE`, as buildctl --tlscert"),
		key:        fs.String("tlskey", "", "with --builder: client key `FILE`, as buildctl --tlskey"),
		serverName: fs.String("tlsservername", "", "with --builder: the `NAME` buildkitd's certificate must hold (default: the address's host), as buildctl --tlsservername"),
	}
}

// options returns the Builder options the flags give command, or a usage
// error for TLS flags without --builder.
func (f *builderFlags) options(command string) ([]snapbuild.Option, error) {
	tls := snapbuild.BuilderTLS{CACert: *f.caCert, Cert: *f.cert, Key: *f.key, ServerName: *f.serverName}
	if *f.addr == "" {
		if tls != (snapbuild.BuilderTLS{}) {
			return nil, usagef("%s: --tlscacert, --tlscert, --tlskey and --tlsservername configure the connection to a BuildKit daemon: give --builder buildkit://ADDR too", command)
		}
		return nil, nil
	}
	return []snapbuild.Option{snapbuild.WithBuilder(*f.addr, tls)}, nil
}
