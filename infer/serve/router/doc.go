// Package router spreads OpenAI API requests over replicas of `sluice
// serve`: by prompt-prefix affinity (requests sharing a long prefix go to
// the replica whose prefix cache holds it, unless its load is well past
// the least loaded's), by power of two choices on requests in flight, or
// at random; a request whose replica fails before answering (for a
// stream, before its first event) is retried on another, and the failed
// replica is left out for a while.
//
// The replicas are a fixed list of URLs, or (Config.Dynamic) the set
// SetReplicas last gave with their reported queues: package deploy's
// Controller feeds it a cluster deployment's replicas and scales them.
// A replica's load is the larger of its reported queue and this router's
// requests in flight to it.
//
// This package is unstable.
package router
