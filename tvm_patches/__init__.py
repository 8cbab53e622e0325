"""Every adaptation of cdmpp-tvm to the released apache-tvm 0.27.0.post1, in one place.

Each module names the TVM version it is for and why it exists.
"""
