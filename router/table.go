package router

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pnats/switchyard/resp"
)

// Table holds command flags as a Redis server reports them in its COMMAND
// reply. It is immutable once built and safe for concurrent use; a nil
// *Table knows no command.
//
// The proxy builds one per group from the master's own COMMAND when it
// connects, so that the server's version and its modules are covered, and
// uses Builtin when that fails (an ACL without +command, say).
type Table struct {
	// cmds maps upper-case command names to their entries.
	cmds map[string]*command
}

type command struct {
	info CommandInfo
	// subs maps upper-case subcommand names (the part after '|') to
	// their entries; nil for a command without subcommands.
	subs map[string]*command
}

// CommandInfo is one entry of COMMAND, a command or a subcommand. Its
// slices are shared with the Table and must not be modified.
type CommandInfo struct {
	// Name is the name as the server reports it: lower case, and
	// "config|get" for a subcommand.
	Name string
	// Arity is the number of arguments, name included; -N means at least N.
	Arity int
	Flags Flags
	// FlagNames lists every flag as the server reported it, including
	// those Flags has no bit for.
	FlagNames []string
	// FirstKey, LastKey and KeyStep are the legacy key positions.
	FirstKey, LastKey, KeyStep int
	// Categories are the ACL categories, e.g. "@read" (Redis 6 and later).
	Categories []string
	// Tips are the command tips, e.g. "nondeterministic_output" (Redis 7).
	Tips []string
	// KeySpecs are the key specifications as the server sent them (Redis 7).
	KeySpecs []resp.Value
	// Subcommands are the full names of the subcommands, sorted.
	Subcommands []string
}

// maxTableName is longer than any command or subcommand name Redis or a
// common module has; a longer name is unknown, and so treated as a write.
const maxTableName = 64

// ParseCommandReply builds a Table from the raw reply of COMMAND (or of
// COMMAND INFO, whose nulls for unknown names it skips), RESP2 or RESP3.
// It reads the Redis 7 shape, [name, arity, flags, first-key, last-key,
// step, acl-categories, tips, key-specs, subcommands], and the shorter
// ones of earlier versions. An error reply, a malformed entry or a reply
// with no command is an error: the caller should keep the table it has.
func ParseCommandReply(raw []byte) (*Table, error) {
	v, err := resp.ParseValue(raw)
	if err != nil {
		return nil, fmt.Errorf("router: COMMAND reply: %w", err)
	}
	if v.IsError() {
		return nil, fmt.Errorf("router: COMMAND reply is an error: %.100q", v.Str)
	}
	if !isList(v) {
		return nil, fmt.Errorf("router: COMMAND reply is of type %q, not an array", v.Type)
	}
	t := &Table{cmds: make(map[string]*command, len(v.Elems))}
	for i, e := range v.Elems {
		if e.Null {
			continue
		}
		c, err := parseCommand(e, false)
		if err != nil {
			return nil, fmt.Errorf("router: COMMAND reply, entry %d: %w", i, err)
		}
		key := strings.ToUpper(c.info.Name)
		if t.cmds[key] != nil {
			return nil, fmt.Errorf("router: COMMAND reply lists %q twice", c.info.Name)
		}
		t.cmds[key] = c
	}
	if len(t.cmds) == 0 {
		return nil, fmt.Errorf("router: COMMAND reply lists no command")
	}
	return t, nil
}

// parseCommand reads one entry. Name, arity, flags and subcommands decide
// routing and must be well formed; the descriptive fields are taken as far
// as they have the expected shape, so that a newer server's additions do
// not cost the whole table.
func parseCommand(v resp.Value, isSub bool) (*command, error) {
	if !isList(v) || len(v.Elems) < 3 {
		return nil, fmt.Errorf("want an array of at least 3 fields, got type %q with %d", v.Type, len(v.Elems))
	}
	f := v.Elems
	c := &command{}
	in := &c.info
	if !isString(f[0]) || len(f[0].Str) == 0 {
		return nil, fmt.Errorf("bad command name of type %q", f[0].Type)
	}
	in.Name = string(f[0].Str)
	if f[1].Type != resp.TypeInteger {
		return nil, fmt.Errorf("%s: arity of type %q", in.Name, f[1].Type)
	}
	in.Arity = int(f[1].Int)
	if !isList(f[2]) {
		return nil, fmt.Errorf("%s: flags of type %q", in.Name, f[2].Type)
	}
	for _, fl := range f[2].Elems {
		if !isString(fl) {
			return nil, fmt.Errorf("%s: flag of type %q", in.Name, fl.Type)
		}
		in.FlagNames = append(in.FlagNames, string(fl.Str))
		in.Flags |= parseFlag(string(fl.Str))
	}
	if len(f) >= 6 {
		in.FirstKey, in.LastKey, in.KeyStep = int(f[3].Int), int(f[4].Int), int(f[5].Int)
	}
	if len(f) >= 7 {
		in.Categories = stringList(f[6])
	}
	if len(f) >= 8 {
		in.Tips = stringList(f[7])
	}
	if len(f) >= 9 && isList(f[8]) {
		in.KeySpecs = f[8].Elems
	}
	if len(f) < 10 || len(f[9].Elems) == 0 {
		return c, nil
	}
	if isSub {
		return nil, fmt.Errorf("%s: subcommands of a subcommand", in.Name)
	}
	if !isList(f[9]) {
		return nil, fmt.Errorf("%s: subcommands of type %q", in.Name, f[9].Type)
	}
	c.subs = make(map[string]*command, len(f[9].Elems))
	for _, e := range f[9].Elems {
		sc, err := parseCommand(e, true)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", in.Name, err)
		}
		// Redis names a subcommand "parent|sub" and looks it up by the
		// second argument alone.
		_, sub, _ := strings.Cut(sc.info.Name, "|")
		if sub == "" {
			sub = sc.info.Name
		}
		key := strings.ToUpper(sub)
		if c.subs[key] != nil {
			return nil, fmt.Errorf("%s: subcommand %q listed twice", in.Name, sc.info.Name)
		}
		c.subs[key] = sc
		in.Subcommands = append(in.Subcommands, sc.info.Name)
	}
	slices.Sort(in.Subcommands)
	return c, nil
}

func isList(v resp.Value) bool {
	return !v.Null && (v.Type == resp.TypeArray || v.Type == resp.TypeSet)
}

func isString(v resp.Value) bool {
	switch v.Type {
	case resp.TypeSimpleString, resp.TypeBulkString, resp.TypeVerbatim:
		return !v.Null
	}
	return false
}

// stringList returns the string elements of a list, nil if v is not one.
func stringList(v resp.Value) []string {
	if !isList(v) {
		return nil
	}
	var out []string
	for _, e := range v.Elems {
		if isString(e) {
			out = append(out, string(e.Str))
		}
	}
	return out
}

// lookup finds the entry Redis would run for args, as Redis 7's
// lookupCommandLogic does: the command itself when it has no subcommands
// or none is given, else its subcommand named by args[1] (nil when that
// is unknown, which Redis refuses). It does not allocate.
func (t *Table) lookup(args [][]byte) *command {
	if t == nil || len(args) == 0 {
		return nil
	}
	var buf [maxTableName]byte
	name, ok := upperInto(&buf, args[0])
	if !ok {
		return nil
	}
	c := t.cmds[string(name)]
	if c == nil || c.subs == nil || len(args) < 2 {
		return c
	}
	if name, ok = upperInto(&buf, args[1]); !ok {
		return nil
	}
	return c.subs[string(name)]
}

// Flags returns the flags of the command args names (args[0] is the name,
// in any case), or of its subcommand when the command has subcommands
// (CONFIG GET, OBJECT ENCODING, CLIENT LIST, ...). ok is false when the
// table does not know the command or its subcommand. It does not allocate.
func (t *Table) Flags(args [][]byte) (f Flags, ok bool) {
	c := t.lookup(args)
	if c == nil {
		return 0, false
	}
	return c.info.Flags, true
}

// IsRead reports whether a replica may serve the command: the table knows
// it and flags it readonly and not write. Unknown commands are writes
// (false). EVAL, EVALSHA and FCALL are not reads, since Redis flags them
// neither readonly nor write; their _RO forms are. A readonly command that
// may block (XREAD ... BLOCK) is a read too: pinning it is the caller's
// business. It does not allocate.
func (t *Table) IsRead(args [][]byte) bool {
	f, ok := t.Flags(args)
	return ok && f&FlagReadonly != 0 && f&FlagWrite == 0
}

// Command returns the entry of a command or subcommand by its full name,
// in any case: "get", "CONFIG|GET".
func (t *Table) Command(name string) (CommandInfo, bool) {
	if t == nil {
		return CommandInfo{}, false
	}
	name = strings.ToUpper(name)
	parent, sub, isSub := strings.Cut(name, "|")
	c := t.cmds[parent]
	if c != nil && isSub {
		c = c.subs[sub]
	}
	if c == nil {
		return CommandInfo{}, false
	}
	return c.info, true
}

// Names returns the full names of every command and subcommand in the
// table, sorted.
func (t *Table) Names() []string {
	if t == nil {
		return nil
	}
	var out []string
	for _, c := range t.cmds {
		out = append(out, c.info.Name)
		out = append(out, c.info.Subcommands...)
	}
	slices.Sort(out)
	return out
}

// upperInto copies name into buf in upper case. ok is false when it is too
// long for buf.
func upperInto(buf *[maxTableName]byte, name []byte) ([]byte, bool) {
	if len(name) > len(buf) {
		return nil, false
	}
	for i, c := range name {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		buf[i] = c
	}
	return buf[:len(name)], true
}
