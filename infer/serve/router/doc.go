// Package router spreads OpenAI API requests over replicas of `sluice
// serve`: by prompt-prefix affinity (requests sharing a long prefix go to
// the replica whose prefix cache holds it, unless its load is well past
// the least loaded's), by power of two choices on requests in flight, or
// at random; a request whose replica fails before answering (for a
// stream, before its first event) is retried on another, and the failed
// replica is left out for a while.
//
// Placing replicas on the cluster's workers and autoscaling them are not
// here yet: the router takes a fixed list of replica URLs.
//
// This package is unstable.
package router
