# workerd config for the benchmarks' JSON worker (worker.js).
#
# The socket has no address here: give it on the command line, e.g.
#   workerd serve bench/workerd/config.capnp --socket-addr http=127.0.0.1:8787
# (bench/workerd/install prints the workerd binary's path.)
#
# Threads: workerd runs every request of a process on one event-loop thread
# (one V8 isolate, reused: no fresh instance per request), and `serve` has no
# flag for worker threads or processes. Besides it there is one
# "V8 DefaultWorker" thread on a 2-core machine (GC, compilation), which
# takes ~2% of the CPU under load. So workerd is capped at one core, where
# the Go servers use every core; to use more, one would run more processes
# behind a balancer, which the benchmark does not do.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [ (name = "json", worker = .jsonWorker) ],
  sockets = [ (name = "http", http = (), service = "json") ],
);

const jsonWorker :Workerd.Worker = (
  modules = [ (name = "worker.js", esModule = embed "worker.js") ],
  compatibilityDate = "2024-09-23",
);
