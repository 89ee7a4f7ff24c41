// Package commit is the job commit protocol shared by the local executor
// and the cluster: where a job stages its files (StagingName, AttemptDir),
// the "mode is error" check (CheckDest), how new files are published so a
// failure at any step leaves the destination readable (Finish, Publish),
// and the _SUCCESS manifest written last (Manifest, ReadManifest).
//
// executor/local publishes the uploads it wrote through Finish; a cluster
// job's commit task moves the files its sink tasks staged under AttemptDir
// with Publish, then removes the staging directory (RemoveStaging).
package commit
