# SPDX-License-Identifier: GPL-2.0
#
# pyalloc top-level Makefile.
#
#   make            module (against KDIR), libpyalloc, selftests, demo
#   make run        set everything up, boot the VM and run the demo
#   make check      host unit tests + static checks + VM selftests
#   make check-debug  the debug-kernel lane (see debug/)
#   make bench      the benchmark in the VM (see bench/)
#   make install    libpyalloc, pyallocstat, man pages (PREFIX, DESTDIR)
#   make modules_install  pyalloc.ko (KDIR, INSTALL_MOD_PATH, INSTALL_MOD_DIR)
#   make deb        Debian packages in build/deb (see debian/)
#
# Dependencies are installed by scripts/deps.sh into a cache outside the
# tree (PYALLOC_CACHE, default ${XDG_CACHE_HOME:-~/.cache}/pyalloc).

KSERIES ?= 6.12
PYALLOC_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/pyalloc
export PYALLOC_CACHE
KSFT_DIR := $(PYALLOC_CACHE)/ksft
export KSFT_DIR

# The VM kernel of the chosen series: VM_KVER, VM_KDIR, VM_VMLINUZ
# (written by scripts/deps.sh).
-include $(PYALLOC_CACHE)/$(KSERIES).env

# `make` builds for the running kernel when its headers are installed,
# otherwise for the cached Debian kernel the VM boots.
HOST_KDIR := /lib/modules/$(shell uname -r)/build
KDIR ?= $(if $(wildcard $(HOST_KDIR)/Makefile),$(HOST_KDIR),$(VM_KDIR))

.PHONY: all deps module vm-module lib selftests host-test static-check \
	check check-debug run bench install clean help modules_install deb

all: module lib selftests

help:
	@sed -n '3,13p' Makefile

deps:
	@scripts/deps.sh $(KSERIES)

# Build the module out of a copy of the sources per kernel, so that builds
# for the host and for each VM kernel never mix objects.  cp -p keeps the
# times, so kbuild only recompiles what changed.
# $(call build_module,KDIR,OUTDIR)
define build_module
	@test -f $(1)/Makefile || { echo "no kernel headers in '$(1)' (make deps?)"; exit 1; }
	@mkdir -p $(2)/kmod $(2)/uapi/linux
	@cp -p Kbuild $(2)/
	@cp -p kmod/*.c kmod/*.h $(2)/kmod/
	@cp -p uapi/linux/pyalloc.h $(2)/uapi/linux/
	$(MAKE) -C $(1) M=$(CURDIR)/$(2) W=1 modules
endef

module:
	@test -n "$(KDIR)" || scripts/deps.sh $(KSERIES)
	@$(MAKE) --no-print-directory build-module-kdir
	@cp build/kmod-$(notdir $(patsubst %/build,%,$(KDIR)))/pyalloc.ko pyalloc.ko

.PHONY: build-module-kdir
build-module-kdir:
	$(call build_module,$(KDIR),build/kmod-$(notdir $(patsubst %/build,%,$(KDIR))))

# The module for the VM kernel: build/kmod-$(VM_KVER)/pyalloc.ko
vm-module: deps
	@$(MAKE) --no-print-directory build-vm-module

.PHONY: build-vm-module
build-vm-module:
	$(call build_module,$(VM_KDIR),build/kmod-$(VM_KVER))

lib:
	$(MAKE) -C userspace

selftests: lib
	$(MAKE) -C selftests

host-test:
	$(MAKE) -C tests/host run
	$(MAKE) -C userspace host-test

static-check: deps
	scripts/static-check.sh $(KSERIES)

run: deps
	$(MAKE) vm-module lib
	vm/run.sh --kernel $(KSERIES) --add userspace/demo -- ./demo

# make check boots every kernel of CHECK_SERIES.
CHECK_SERIES ?= 6.12 6.1
check:
	scripts/check.sh $(CHECK_SERIES)

# The debug lane: KASAN, lockdep, kmemleak, fault injection, the fuzzer.
check-debug:
	debug/check-debug.sh

# Benchmarks against glibc, jemalloc, mimalloc and tcmalloc in one VM run.
bench:
	bench/run.sh

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man

install:
	$(MAKE) -C userspace install
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 $(wildcard tools/pyallocstat tools/pyalloc-run) $(DESTDIR)$(BINDIR)/
	$(MAKE) -C docs install MANDIR=$(MANDIR) DESTDIR=$(DESTDIR)

# The module into $(INSTALL_MOD_PATH)/lib/modules/<release>/$(INSTALL_MOD_DIR)
# with the kernel's own modules_install (Documentation/kbuild/modules.rst),
# then depmod.  Debian's header trees have no System.map, so the kernel's
# depmod step skips itself: depmod runs here, on the running system when
# INSTALL_MOD_PATH is empty, and in a staging root only when that root holds
# the kernel's own modules (modules.order), since an index of one module
# would be wrong there and the target's packaging runs depmod anyway.
INSTALL_MOD_DIR ?= extra
DEPMOD ?= depmod
MOD_BUILD = build/kmod-$(notdir $(patsubst %/build,%,$(KDIR)))
MOD_KREL = $(shell sed -n 's/^\#define UTS_RELEASE "\(.*\)"/\1/p' \
	     $(KDIR)/include/generated/utsrelease.h 2>/dev/null)
MOD_ROOT = $(if $(INSTALL_MOD_PATH),$(abspath $(INSTALL_MOD_PATH)))

modules_install: module
	@test -n "$(MOD_KREL)" || { echo "no kernel release in $(KDIR)"; exit 1; }
	$(MAKE) -C $(KDIR) M=$(CURDIR)/$(MOD_BUILD) \
		INSTALL_MOD_PATH=$(MOD_ROOT) INSTALL_MOD_DIR=$(INSTALL_MOD_DIR) \
		modules_install
	@PATH="$$PATH:/sbin:/usr/sbin"; \
	if [ -z "$(MOD_ROOT)" ]; then \
		echo "  DEPMOD  $(MOD_KREL)"; $(DEPMOD) -a $(MOD_KREL); \
	elif [ -f "$(MOD_ROOT)/lib/modules/$(MOD_KREL)/modules.order" ]; then \
		echo "  DEPMOD  $(MOD_ROOT) $(MOD_KREL)"; \
		$(DEPMOD) -a -b "$(MOD_ROOT)" $(MOD_KREL); \
	else \
		echo "  DEPMOD  skipped: $(MOD_ROOT) holds no modules of $(MOD_KREL) (run depmod $(MOD_KREL) on the target)"; \
	fi

# Debian packages from this tree (debian/): build/deb/*.deb
deb:
	packaging/make-deb.sh build/deb

clean:
	rm -rf build pyalloc.ko out
	$(MAKE) -C userspace clean
	$(MAKE) -C selftests clean
	$(MAKE) -C tests/host clean
