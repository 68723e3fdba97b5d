"""FPGA boards: a UART-driven accelerator top, bitstream builds and the host driver.

* :mod:`boards.uart`     - 8N1 UART (TX/RX) written for the project
* :mod:`boards.protocol` - frame format, CRC-16/CCITT-FALSE, commands, status codes
* :mod:`boards.engine`   - gateware: frame receiver/sender and command engine
* :mod:`boards.top`      - accelerator top (UART + engine + systolic array), board wrappers
* :mod:`boards.model`    - pure-Python device model (protocol + golden arithmetic)
* :mod:`boards.faults`   - seeded link-fault injection for tests
* :mod:`boards.host`     - host driver ``Accelerator`` and ``python -m boards.host``
* :mod:`boards.build`    - ``python -m boards.build`` bitstreams for iCEBreaker / ULX3S
"""
