// Package schedule is cron schedules: a 5-field cron expression read in an
// IANA time zone, with the DST rules of cronie and a catch-up policy for
// runs missed while nothing was running. It is a leaf: it imports only the
// standard library and internal/didyoumean, so the Raft state machine
// (executor/cluster/state) can fire schedules without linking the plan
// compiler, the dataset engine or the GPU backends.
package schedule
