package resp

// Type bytes: the first byte of every RESP frame says what follows.
const (
	TypeSimpleString = '+' // +<string>\r\n
	TypeError        = '-' // -<message>\r\n
	TypeInteger      = ':' // :<int64>\r\n
	TypeBulkString   = '$' // $<len>\r\n<bytes>\r\n, $-1\r\n is the RESP2 null
	TypeArray        = '*' // *<count>\r\n<elements>, *-1\r\n is the RESP2 null array
	TypeNull         = '_' // _\r\n
	TypeBoolean      = '#' // #t\r\n or #f\r\n
	TypeDouble       = ',' // ,<float>\r\n, also ,inf ,-inf ,nan
	TypeBigNumber    = '(' // (<big integer>\r\n
	TypeBulkError    = '!' // !<len>\r\n<bytes>\r\n
	TypeVerbatim     = '=' // =<len>\r\n<3-byte format>:<bytes>\r\n
	TypeMap          = '%' // %<pairs>\r\n<key><value>..., two elements per pair
	TypeAttribute    = '|' // |<pairs>\r\n<key><value>...<the reply it annotates>
	TypeSet          = '~' // ~<count>\r\n<elements>
	TypePush         = '>' // ><count>\r\n<elements>, out-of-band data such as Pub/Sub messages
	TypeStreamedPart = ';' // chunk of a streamed string $?\r\n ;4\r\nabcd\r\n ;0\r\n
	TypeEnd          = '.' // end of a streamed aggregate *?\r\n ... .\r\n
)
