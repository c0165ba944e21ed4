package router

import "sync"

//go:generate go run ./gen

var builtin struct {
	once  sync.Once
	table *Table
}

// Builtin returns the table recorded from a real redis-server into
// commands_gen.go (see BuiltinVersion), the fallback for when the server's
// own COMMAND cannot be had. It is parsed once, on first use.
func Builtin() *Table {
	builtin.once.Do(func() {
		t, err := ParseCommandReply([]byte(builtinReply))
		if err != nil {
			// The recorded reply is checked by the tests; failing here
			// means commands_gen.go was edited by hand.
			panic("router: built-in command table: " + err.Error())
		}
		builtin.table = t
	})
	return builtin.table
}
