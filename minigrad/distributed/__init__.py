"""Several processes: communicators over MPI (mpi4py) for NumPy arrays and over NCCL for CuPy arrays,
data-parallel training on them, and the paper's two towers (model parallelism).

    comm = minigrad.distributed.world()     # this process's communicator
    comm.rank, comm.size

Outside an MPI launcher world() is a one-process communicator and mpi4py is never imported. The
package follows its concerns, as ChainerMN splits them:

    launch.py          is this process one of a job's ranks; a rank that fails or hangs ends the job
    communicators.py   world(), MPICommunicator and LocalCommunicator (requests.py: their requests)
    gpu.py             CuPy arrays through NCCL, or staged through host memory
    data_parallel.py   DataParallel: a replica per rank, the gradients summed while backward runs
    checks.py          the ranks must agree on their configuration, data and batch before training
    towers.py          the paper's two towers (section 3.2), one per rank
"""
from . import towers
from .checks import check_agreement, check_global_batch, file_list_hash
from .communicators import LocalCommunicator, MPICommunicator, world
from .data_parallel import DataParallel
from .gpu import select_gpu
from .launch import TIMEOUT, exit_job, set_timeout
