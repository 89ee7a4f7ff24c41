// Package harness runs Sluice's benchmarks, the workloads of WORKLOADS.md:
// etl/sales against DuckDB (ETL), the same query over MinIO (S3), the
// loopback cluster and its failover run (Cluster), the online serving
// benchmark (Serve) and the offline inference benchmark (Infer).
//
// The benchmarks that measure a whole process (ETL, S3, Cluster) run the
// sluice binary named in their config as child processes: `gen sales`,
// `bench etl-query`, `run`, `coordinator` and `worker`. A child's peak RSS
// counts its parent's at fork on Linux, so this process stays small and
// the data is generated in a child too. cmd/sluice holds only the flags
// that fill these configs.
//
// The harness is unstable: its configs and results follow the workloads.
package harness
