"""DRAM-PIM tier: bank-level processing-in-memory on top of the DRAM device model.

What is modelled
----------------
* PIM units attached to every bank or to every ``banks_per_unit`` banks of each pseudo-channel (PC), with
  SIMD lanes, a datatype, a clock, output accumulators and a per-PC global buffer that holds the broadcast
  input vector (Samsung HBM-PIM's GRF_A, SK hynix AiM's global buffer).
* PIM commands (all-bank / bank-group / single-bank activate and precharge, all-bank and single-bank MAC,
  global-buffer write, result read-out, register-to-bank store, mode switches) with timing rules as data
  (:mod:`memsim.pim.commands`), timed by an in-order, event-driven Numba kernel (:mod:`memsim.pim.kernel`)
  with all-bank refresh and a weighted activation window (tFAW / power limit).
* Operators (:mod:`memsim.pim.api`): GEMV with W resident in the banks, element-wise add / mul / ReLU,
  attention score (K resident) and attention x V (V resident), each lowered by a named layout
  (:mod:`memsim.pim.lowering`) to a command stream; and the non-PIM equivalent (the host streams the
  operands through the normal read path of :class:`memsim.dram.engine.DramEngine`).

What is simplified
------------------
* Pseudo-channels are independent: the command bus shared by the two PCs of an HBM channel is not
  modelled (a PIM stream issues at most one column command per tCCD per PC, well below the bus rate).
* Commands of one PC issue strictly in program order, one per memory clock (PIM kernels are fenced).
* Host-side reductions (lanes, tiles, channels) are counted (``host_adds``) but take no simulated time.
"""
