from reconciler.runtime.cli import main

main()
