// Package bus is edgenode's message bus: the beehive model of KubeEdge
// (KubeEdge v0.3.0 docs/modules/beehive.md) over bounded queues.
//
// A module registers a name and a group with AddModule and then reads its own
// queue with Receive, or selects on its Inbox (Queue) with other channels. Any module sends to a name (Send), to every member of a
// group (Send2Group), or sends and waits for the answer (SendSync); the
// answering module replies with SendResp, which hands the message to the
// waiter whose request id equals the reply's parent id. Beehive's
// Send2GroupSync and CleanUp are left out: nothing in edgenode needs them.
//
// What flows in and out: Message values. A Message is a value (header, route,
// content); its content stays raw JSON bytes while it travels and is decoded
// once by the module that needs it. Its resource path is split once, when
// NewMessage makes it or Decode reads it, into Message.Res (namespace,
// kind, name, and for device resources the rest), which every module
// reads instead of splitting the path again. The wire form of a Message, in both
// KubeEdge eras (docs/protocol.md 1.1 and 1.2), is written and read by Encode
// and Decode.
//
// Operations, groups, module names and resource types are typed constants
// here and nowhere else.
//
// Goroutines: none. Persistence: none. Every queue is bounded
// (Config.QueueLen); a Send to a full queue or an unknown module is an error,
// never a silent drop. A queue holds 4 messages until more wait at once; it
// then grows up to QueueLen, and Trim takes an empty queue back to 4. Send,
// Receive, SendSync and SendResp do not allocate.
package bus
