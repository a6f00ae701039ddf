from reconciler.runtime.cli.app import main

main()
